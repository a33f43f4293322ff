package node

import (
	"fmt"

	"lanchat/internal/netkey"
)

// loadNetwork reads the office key file; "" is an open network. weak, when
// set, says that the key is a guessable passphrase, for a warning.
func loadNetwork(path string) (ring netkey.Ring, weak string, err error) {
	if path == "" {
		return nil, "", nil
	}
	ring, err = netkey.ReadFile(path)
	if err != nil {
		return nil, "", &ConfigError{Field: "NetworkKeyFile", Err: err}
	}
	for _, k := range ring {
		if k.Weak != "" {
			weak = fmt.Sprintf("the network passphrase is weak (%s): anyone who guesses it joins; lanchat keygen makes a key nobody can guess", k.Weak)
		}
	}
	return ring, weak, nil
}

// networkTag is what the mDNS advertisement carries: the tag of the key
// spoken, or nothing in an open network.
func networkTag(ring netkey.Ring) string {
	if len(ring) == 0 {
		return ""
	}
	return ring[0].Tag()
}

// sameNetwork reports whether an advertisement's tag is of our network: a
// tag of one of our keys in a closed network, none in an open one. Others
// are ignored without connecting to them.
func sameNetwork(ring netkey.Ring, tag string) bool {
	if len(ring) == 0 {
		return tag == ""
	}
	for _, k := range ring {
		if k.Tag() == tag {
			return true
		}
	}
	return false
}
