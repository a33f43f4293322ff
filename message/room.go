package message

// Room events are envelopes whose Conversation is a room name and whose
// Seq numbers them among their author's events in that room. Besides
// KindText messages, a member's arrival and departure are events of
// their own, so that every member folds the same log into the same
// member list.
const (
	// KindJoin: the author joins the room (Body empty).
	KindJoin = "room.join"
	// KindLeave: the author leaves the room (Body empty).
	KindLeave = "room.leave"
	// KindRetention: the author sets how long the room's members keep
	// its events. Body: the duration in decimal seconds, "0" to keep
	// everything (the default). The latest in the room's order is in
	// force.
	KindRetention = "room.retention"
)

// MaxRoomName is the longest room name after the '#'.
const MaxRoomName = 64

// ValidRoom reports whether name is a room name: '#' followed by 1 to
// MaxRoomName of lowercase ASCII letters, digits, '-', '_' and '.'.
func ValidRoom(name string) bool {
	if len(name) < 2 || len(name) > 1+MaxRoomName || name[0] != '#' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// PeekSeq returns the Seq of sealed envelope bytes without checking the
// signature: for a server that only needs to know where a page it
// serves from its own store begins. It reports false when b does not
// decode.
func PeekSeq(b []byte) (uint64, bool) {
	env, err := decode(b)
	if err != nil {
		return 0, false
	}
	return env.Seq, true
}
