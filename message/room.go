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
