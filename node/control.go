package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"lanchat/node/api"
)

// control is the control socket: the local API over HTTP on a Unix
// socket in the data directory (0600, in a 0700 directory, and only for
// processes of our own uid).
type control struct {
	n        *Node
	ln       net.Listener
	srv      *http.Server
	handlers sync.WaitGroup // requests being answered: serve waits for them, so none outlives the node's parts
}

func listenControl(n *Node) (*control, error) {
	ln, err := api.Listen(ControlSocket(n.cfg.DataDir), n.log.With("part", "api"))
	if err != nil {
		return nil, err
	}
	c := &control{n: n, ln: ln, srv: api.NewServer(n, n.log.With("part", "api"))}
	h := c.srv.Handler
	c.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.handlers.Add(1)
		defer c.handlers.Done()
		h.ServeHTTP(w, r)
	})
	return c, nil
}

// serve answers requests until ctx ends; then requests under way get a
// moment to finish and event streams are cut.
func (c *control) serve(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- c.srv.Serve(c.ln) }()
	select {
	case err := <-done:
		return err // the listener failed: the node is unreachable for its front ends
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if c.srv.Shutdown(sctx) != nil {
		c.srv.Close() // cancels the requests still running (event streams, waiting sends)
	}
	err := <-done
	c.handlers.Wait()
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
