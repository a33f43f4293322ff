package cli

import (
	"fmt"
	"strings"

	"lanchat/message"
	"lanchat/node/api"
)

// Room names on the command line. A shell takes an unquoted '#' for the
// start of a comment, so `lanchat join #ops` reaches lanchat as a bare
// `lanchat join`. Commands that take only a room (join, leave, peers
// --room) therefore accept the name without its '#' too; send and
// history, which take a person or a room, need the '#' to tell them
// apart. Either way the name is checked here, with the rule of
// message.ValidRoom, before any request is made.

// quoteHint is added to errors where an unquoted '#' may have eaten the
// argument.
const quoteHint = "quote a room name, since '#' starts a shell comment: '#general', or write general"

// roomArg is arg as a room name, with its '#' added if it has none and
// bare allows that.
func roomArg(arg string, bare bool) (string, error) {
	name := arg
	if bare && !strings.HasPrefix(name, "#") {
		name = "#" + name
	}
	if message.ValidRoom(name) {
		return name, nil
	}
	return "", badRoom(arg, name)
}

// isRoom reports whether a recipient or conversation argument names a
// room rather than a person.
func isRoom(arg string) bool { return strings.HasPrefix(arg, "#") }

// badRoom explains why name (typed as arg) is not a room name.
func badRoom(arg, name string) error {
	rule := fmt.Sprintf("a room is '#' then 1 to %d of a-z, 0-9, '-', '_' and '.'", message.MaxRoomName)
	body := strings.TrimPrefix(name, "#")
	var why string
	switch {
	case body == "":
		why = "it has no name after the '#'"
	case len(body) > message.MaxRoomName:
		why = fmt.Sprintf("its name is %d bytes long", len(body))
	case strings.ContainsAny(body, " \t\n"):
		why = "it has a space in it"
	case strings.ToLower(body) != body && message.ValidRoom("#"+strings.ToLower(body)):
		why = fmt.Sprintf("room names are lower case: %s", "#"+strings.ToLower(body))
	case strings.Contains(body, "#"):
		why = "it has a '#' inside"
	default:
		why = "it has a character that is not allowed"
		for _, r := range body {
			if !message.ValidRoom("#" + string(r)) {
				why = fmt.Sprintf("'%s' is not allowed", cleanLine(string(r)))
				break
			}
		}
	}
	return fmt.Errorf("\"%s\" is not a room name (%s): %s", cleanLine(arg), why, rule)
}

// roomOutput is one room in the JSON that join, leave and rooms print.
type roomOutput struct {
	Name          string `json:"name"`
	Joined        bool   `json:"joined"`
	MembersOnline int    `json:"members_online"`
	MembersTotal  int    `json:"members_total"`
	Unread        int    `json:"unread"`
	Retention     int64  `json:"retention"` // seconds its members keep its events; 0: for ever
}

func toRoomOutput(r api.Room) roomOutput {
	return roomOutput{Name: r.Name, Joined: r.Joined, MembersOnline: r.MembersOnline, MembersTotal: r.MembersTotal, Unread: r.Unread, Retention: r.Retention}
}

// describeCounts is a room's counts in words: "3 of 5 members online".
func describeCounts(r api.Room) string {
	if r.MembersTotal == 0 {
		return "no members"
	}
	noun := "members"
	if r.MembersTotal == 1 {
		noun = "member"
	}
	s := fmt.Sprintf("%d of %d %s online", r.MembersOnline, r.MembersTotal, noun)
	if r.Unread > 0 {
		s += fmt.Sprintf(", %d unread", r.Unread)
	}
	return s
}
