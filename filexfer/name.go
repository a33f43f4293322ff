package filexfer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// StagingDir is the folder inside the download directory where partial
// files and their journals live until they verify. No received name may
// take it.
const StagingDir = ".lanchat-partial"

// ErrBadName: a received name that cannot be made safe.
var ErrBadName = fmt.Errorf("%w: unsafe file name", ErrProtocol)

// SafePath turns a name from a peer's manifest into a relative slash path
// that stays inside the download directory on any common file system, or
// refuses it. It refuses what has no safe meaning: an empty name, an
// absolute path, "." or ".." anywhere, an empty element ("a//b"), NUL,
// invalid UTF-8, more than MaxName bytes, MaxDepth elements or
// MaxComponent bytes in one element, and the staging folder's name at the
// top. It rewrites what is only awkward, each offending rune to "_":
// control characters, the backslash and the characters Windows refuses
// (<>:"|?*); trailing dots and spaces; and it prefixes device names (CON,
// NUL, COM1, LPT1 and the like, with any extension) with "_". The same
// input always gives the same output.
func SafePath(name string) (string, error) {
	if name == "" || len(name) > MaxName {
		return "", fmt.Errorf("%w: %d bytes", ErrBadName, len(name))
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not UTF-8", ErrBadName)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL byte", ErrBadName)
	}
	if name[0] == '/' {
		return "", fmt.Errorf("%w: absolute path %q", ErrBadName, name)
	}
	parts := strings.Split(name, "/")
	if len(parts) > MaxDepth {
		return "", fmt.Errorf("%w: %d path elements", ErrBadName, len(parts))
	}
	for i, p := range parts {
		switch {
		case p == "":
			return "", fmt.Errorf("%w: empty path element in %q", ErrBadName, name)
		case p == "." || p == "..":
			return "", fmt.Errorf("%w: %q in %q", ErrBadName, p, name)
		case len(p) > MaxComponent:
			return "", fmt.Errorf("%w: path element of %d bytes", ErrBadName, len(p))
		}
		parts[i] = safeElement(p)
		// A rewritten element may have become "." or "..": "..\x01"
		// cannot, since only trailing dots are rewritten, but say so.
		if parts[i] == "." || parts[i] == ".." {
			return "", fmt.Errorf("%w: %q in %q", ErrBadName, p, name)
		}
	}
	if strings.EqualFold(parts[0], StagingDir) {
		return "", fmt.Errorf("%w: %q is the staging folder", ErrBadName, parts[0])
	}
	return strings.Join(parts, "/"), nil
}

// safeElement rewrites one path element; see SafePath.
func safeElement(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for _, r := range p {
		switch {
		case r < 0x20, r == 0x7f, unicode.Is(unicode.Cc, r), r == 0x2028, r == 0x2029:
			b.WriteByte('_')
		case strings.ContainsRune(`\<>:"|?*`, r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	s := b.String()
	// Windows drops trailing dots and spaces, so "a." would become "a".
	if t := strings.TrimRight(s, ". "); len(t) != len(s) {
		s = t + strings.Repeat("_", len(s)-len(t))
	}
	if isDeviceName(s) {
		s = "_" + s
	}
	return s
}

// isDeviceName reports a Windows device name, with or without extension.
func isDeviceName(s string) bool {
	base, _, _ := strings.Cut(s, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) {
		return base[3] >= '0' && base[3] <= '9'
	}
	return false
}

// numbered is the i-th alternative of a taken name: "a (1).txt", or "a (1)"
// for a folder or a name without extension. A leading dot is not an
// extension (".bashrc (1)").
func numbered(name string, i int, dir bool) string {
	ext := ""
	if !dir {
		if j := strings.LastIndexByte(name, '.'); j > 0 {
			name, ext = name[:j], name[j:]
		}
	}
	suffix := fmt.Sprintf(" (%d)", i)
	// Stay within the element limit: cut the stem, at a rune boundary.
	if over := len(name) + len(suffix) + len(ext) - MaxComponent; over > 0 {
		if over >= len(name) {
			ext = ""
			over = len(name) + len(suffix) - MaxComponent
		}
		if over > 0 {
			name = clip(name, len(name)-over)
		}
	}
	return name + suffix + ext
}
