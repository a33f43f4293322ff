// Package tui is lanchat's terminal UI: a sidebar of rooms and people, the
// open conversation, an input line and a status bar, built on Bubble Tea.
// It is a client of the local API and nothing else: it reads the node's
// event stream and calls the API for history, sending and the rest, so it
// works the same on a node in this process and on one it attaches to.
package tui

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"lanchat/node/api"
)

// Run shows the UI on the terminal in and out until the person quits or
// ctx ends. Events come from a's event stream; when the stream ends (a
// resync, the node gone) it subscribes again, and the snapshot that
// starts the new stream reloads the state.
func Run(ctx context.Context, a api.API, opts Options, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := New(a, opts)
	// Bubble Tea draws on a ticker whether or not anything changed: at
	// its default 60 a second, that alone kept an idle UI at 1.4 % of a
	// core; 30 halves it and still shows a message within a frame of 33 ms.
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithFPS(30))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pump(ctx, a, p.Send)
	}()
	_, err := p.Run()
	cancel()
	wg.Wait()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		err = nil
	}
	return err
}

// pump feeds the event stream to send until ctx ends, subscribing again
// after a resync at once and after a lost stream every retry.
func pump(ctx context.Context, a api.API, send func(tea.Msg)) {
	const retry = 2 * time.Second
	for ctx.Err() == nil {
		err := a.Events(ctx, func(ev api.Event) error {
			send(eventMsg{ev})
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, api.ErrResync) {
			continue
		}
		send(streamEndMsg{err})
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}
