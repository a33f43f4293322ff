package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"lanchat/node/api"
)

var retentionCmd = command{
	name:    "retention",
	args:    "<#room|room> <duration|forever>",
	summary: "set how long a room's members keep its events (30d, 12h, forever); older ones are deleted on every member",
	example: "lanchat retention '#ops' 30d\nlanchat retention ops forever   # keep everything again (what was deleted stays deleted)",
	level:   "warn",
	flags: func(fs *pflag.FlagSet) func(*env, []string) int {
		return func(e *env, args []string) int { return e.retention(args) }
	},
}

func (e *env) retention(args []string) int {
	if len(args) != 2 {
		return e.usageErr("retention", "a room and a duration, e.g. lanchat retention '#ops' 30d (got %d arguments)", len(args))
	}
	room, err := roomArg(args[0], true)
	if err != nil {
		return e.usageErr("retention", "%v", err)
	}
	secs, err := parseRetention(args[1])
	if err != nil {
		return e.usageErr("retention", "%v", err)
	}
	a, err := e.open(0)
	if err != nil {
		return e.fail(err)
	}
	r, err := a.SetRetention(context.Background(), api.RetentionRequest{Room: room, Retention: secs})
	if err != nil {
		return e.fail(err)
	}
	if e.g.json {
		writeJSON(e.stdout, toRoomOutput(r))
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%s now keeps %s; its members delete what is older\n", cleanLine(r.Name), describeRetention(r.Retention))
	return exitOK
}

// parseRetention reads a retention as people write it: "forever" or
// "0", a number of days ("30d"), or a Go duration ("12h", "90m"), to
// whole seconds. The node checks the bounds.
func parseRetention(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	switch s {
	case "forever", "for-ever", "0":
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil || n > 100*365 {
			return 0, fmt.Errorf("retention %q: a number of days, e.g. 30d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			return 0, fmt.Errorf("retention %q: say 30d, 12h, 90m or forever", s)
		}
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("retention %q: whole seconds only", s)
	}
	return int64(d / time.Second), nil
}

// describeRetention is a retention in words: "30 days", "for ever".
func describeRetention(secs int64) string {
	d := time.Duration(secs) * time.Second
	plural := func(n time.Duration, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case secs <= 0:
		return "for ever"
	case d%(24*time.Hour) == 0:
		return plural(d/(24*time.Hour), "day")
	case d%time.Hour == 0:
		return plural(d/time.Hour, "hour")
	case d%time.Minute == 0:
		return plural(d/time.Minute, "minute")
	}
	return plural(d/time.Second, "second")
}
