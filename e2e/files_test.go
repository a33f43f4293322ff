package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lanchat/internal/netlab"
)

// transferLine is a `transfer` line of `run --json`.
type transferLine struct {
	Type     string `json:"type"`
	Transfer struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
		Total     int64  `json:"total"`
		Done      int64  `json:"done"`
		State     string `json:"state"`
	} `json:"transfer"`
}

func (n *node) transfers() []transferLine {
	var out []transferLine
	for _, ev := range n.eventsOf("transfer") {
		var tl transferLine
		if json.Unmarshal([]byte(ev.raw), &tl) == nil {
			out = append(out, tl)
		}
	}
	return out
}

// TestSendFileSurvivesReceiverKill sends a folder (a 200 MB file, nested
// and empty folders, unicode names, a symbolic link) from alice to bob
// across the namespace LAN with the real binaries; bob's node is killed
// (SIGKILL) part way and started again on the same data directory. The
// transfer resumes from what bob had recorded, not from zero, send-file
// exits 0, and the tree arrives byte for byte, the link left out.
func TestSendFileSurvivesReceiverKill(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	alice := startNode(t, lab.Hosts[0], nodeOpts{name: "alice", logLevel: "info"})
	bobDL := newDataDir(t)
	bobOpts := nodeOpts{name: "bob", dataDir: newDataDir(t), logLevel: "info",
		args: []string{"--download-dir", bobDL, "--accept-from", "alice"}}
	bob := startNode(t, lab.Hosts[1], bobOpts)
	waitSees(t, seeTimeout, []*node{alice, bob}, []*node{alice, bob}, "available")

	src := newDataDir(t)
	tree := filepath.Join(src, "Ferien")
	for name, size := range map[string]int{"big.bin": 200 << 20, "日本/写真.jpg": 300 << 10, "a/b/c.txt": 10, "leer.txt": 0} {
		p := filepath.Join(tree, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		b := make([]byte, size)
		r := mrand.New(mrand.NewPCG(uint64(size), 1))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(tree, "empty", "deeper"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(tree, "link"))

	sent := make(chan cliResult, 1)
	go func() {
		r, err := tryCLI(alice.host, lanchatBin(t), "", "--data-dir", alice.dataDir, "send-file", "bob", tree)
		if err != nil {
			r.stderr += err.Error()
			r.code = -1
		}
		sent <- r
	}()
	var id string
	var total int64
	waitFor(t, seeTimeout, func() error {
		for _, tl := range bob.transfers() {
			// Past the first 64 MiB: bob has synced and recorded some.
			if tl.Transfer.Direction == "in" && tl.Transfer.Done > 100<<20 {
				id, total = tl.Transfer.ID, tl.Transfer.Total
				return nil
			}
		}
		return fmt.Errorf("bob has not received 100 MB yet")
	})
	bob.Kill()
	bob2 := startNode(t, lab.Hosts[1], bobOpts)

	select {
	case r := <-sent:
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("send-file did not finish within a minute of the restart")
	}
	// The restarted node's first word about the transfer with data in
	// it already counts what it had verified before the kill.
	var first *transferLine
	for _, tl := range bob2.transfers() {
		if tl.Transfer.ID == id && tl.Transfer.State == "active" {
			first = &tl
			break
		}
	}
	if first == nil || first.Transfer.Done == 0 || first.Transfer.Done >= total {
		t.Fatalf("after the restart bob started at %+v, want part of %d bytes", first, total)
	}
	t.Logf("bob held %d of %d bytes when he came back", first.Transfer.Done, total)

	got := filepath.Join(bobDL, "Ferien")
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		q := filepath.Join(got, rel)
		fi, err := os.Lstat(q)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if err == nil {
				t.Errorf("the link %s was sent", rel)
			}
		case err != nil:
			t.Errorf("missing %s: %v", rel, err)
		case d.IsDir() != fi.IsDir():
			t.Errorf("%s: folder %v, want %v", rel, fi.IsDir(), d.IsDir())
		case !d.IsDir():
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(q)
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs (%d bytes, want %d)", rel, len(b), len(a))
			}
		}
		return nil
	})
}

// TestSendFileOfflineDeclineAndFullDisk: an offer to a recipient who is
// away goes out when he is back; an offer larger than his disk's free
// space is refused before any data moves; an offer over his auto-accept
// size asks him, and his decline ends send-file with exit 1.
func TestSendFileOfflineDeclineAndFullDisk(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	alice := startNode(t, lab.Hosts[0], nodeOpts{name: "alice", logLevel: "info"})
	// bob's download folder is a small file system of its own.
	bobDL := newDataDir(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", bobDL).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", bobDL).Run() })
	bobOpts := nodeOpts{name: "bob", dataDir: newDataDir(t), logLevel: "info",
		args: []string{"--download-dir", bobDL, "--accept-from", "alice", "--accept-max-size", "4MB"}}
	bob := startNode(t, lab.Hosts[1], bobOpts)
	waitSees(t, seeTimeout, []*node{alice, bob}, []*node{alice, bob}, "available")

	src := newDataDir(t)
	file := func(name string, size int) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, size), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small, medium, big := file("small.txt", 1<<20), file("medium.bin", 8<<20), file("big.bin", 40<<20)
	sendFile := func(path string) chan cliResult {
		ch := make(chan cliResult, 1)
		go func() {
			r, err := tryCLI(alice.host, lanchatBin(t), "", "--data-dir", alice.dataDir, "send-file", "bob", path)
			if err != nil {
				r.code, r.stderr = -1, r.stderr+err.Error()
			}
			ch <- r
		}()
		return ch
	}
	result := func(ch chan cliResult) cliResult {
		select {
		case r := <-ch:
			return r
		case <-time.After(45 * time.Second):
			t.Fatal("send-file did not finish")
			return cliResult{}
		}
	}

	// Away, then back.
	if code := bob.Stop(); code != 0 {
		t.Fatalf("bob stopped with %d", code)
	}
	waitSees(t, seeTimeout, []*node{alice}, []*node{bob}, "left")
	ch := sendFile(small)
	waitFor(t, seeTimeout, func() error {
		r := alice.cli("transfers", "--json")
		if !strings.Contains(r.stdout, `"state":"waiting"`) {
			return fmt.Errorf("alice's transfers: %s", r.stdout)
		}
		return nil
	})
	bob = startNode(t, lab.Hosts[1], bobOpts)
	if r := result(ch); r.code != 0 {
		t.Fatalf("to bob, once back: %v", r)
	}
	if fi, err := os.Stat(filepath.Join(bobDL, "small.txt")); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("bob's small.txt: %v", err)
	}

	// More than his disk holds: refused up front, on both sides.
	if r := result(sendFile(big)); r.code != 1 || !strings.Contains(r.stderr, "not enough disk space") {
		t.Fatalf("too big for bob's disk: %v", r)
	}
	if _, err := os.Stat(filepath.Join(bobDL, "big.bin")); !os.IsNotExist(err) {
		t.Fatalf("big.bin at bob: %v", err)
	}

	// Over his auto-accept size: he is asked, and says no.
	ch = sendFile(medium)
	var id string
	waitFor(t, seeTimeout, func() error {
		for _, ev := range bob.eventsOf("file-offer") {
			var o struct {
				ID    string `json:"id"`
				Total int64  `json:"total"`
			}
			if json.Unmarshal([]byte(ev.raw), &o) == nil && o.Total == 8<<20 {
				id = o.ID
				return nil
			}
		}
		return fmt.Errorf("bob was not asked about medium.bin")
	})
	if r := bob.cli("decline", id); r.code != 0 {
		t.Fatalf("%v", r)
	}
	if r := result(ch); r.code != 1 || !strings.Contains(r.stderr, "declined") {
		t.Fatalf("declined: %v", r)
	}
	if _, err := os.Stat(filepath.Join(bobDL, "medium.bin")); !os.IsNotExist(err) {
		t.Fatalf("medium.bin at bob: %v", err)
	}
}

// transferOut is an entry of `lanchat transfers --json`.
type transferOut struct {
	ID        string `json:"id"`
	Direction string `json:"direction"`
	Total     int64  `json:"total"`
	Done      int64  `json:"done"`
	State     string `json:"state"`
	Sent      int64  `json:"sent"`
}

func (n *node) listTransfers(t testing.TB) []transferOut {
	t.Helper()
	r := n.cli("transfers", "--json")
	var ts []transferOut
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ts) != nil {
		t.Fatalf("%s transfers: %v", n, r)
	}
	return ts
}

// TestSendFileSurvivesUnplug: bob's host is unplugged from the switch
// while a 200 MB file is about half way to him, and stays unplugged until
// alice's node lists him offline (and so gives the stream up); then it is
// plugged in again. The transfer resumes, send-file exits 0, the file
// arrives byte for byte, and what alice sent twice, by her own count
// (`transfers --json`, `sent`), is under 5 % of the file.
// alice's link is shaped to 400 Mbit/s so "half way" is a moment the test
// can hit on a loaded machine, not a race.
func TestSendFileSurvivesUnplug(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	if out, err := lab.Hosts[0].Command(t.Context(), "tc", "qdisc", "add", "dev", "eth0", "root",
		"tbf", "rate", "400mbit", "burst", "256kb", "latency", "100ms").CombinedOutput(); err != nil {
		t.Fatalf("shape alice's link: %v: %s", err, out)
	}
	alice := startNode(t, lab.Hosts[0], nodeOpts{name: "alice", logLevel: "info"})
	bobDL := newDataDir(t)
	bob := startNode(t, lab.Hosts[1], nodeOpts{name: "bob", dataDir: newDataDir(t), logLevel: "info",
		args: []string{"--download-dir", bobDL, "--accept-from", "alice"}})
	waitSees(t, seeTimeout, []*node{alice, bob}, []*node{alice, bob}, "available")

	const size = 200 << 20
	src := filepath.Join(newDataDir(t), "film.bin")
	b := make([]byte, size)
	r := mrand.New(mrand.NewPCG(7, 8))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}

	sent := make(chan cliResult, 1)
	go func() {
		r, err := tryCLI(alice.host, lanchatBin(t), "", "--data-dir", alice.dataDir, "send-file", "bob", src)
		if err != nil {
			r.code, r.stderr = -1, r.stderr+err.Error()
		}
		sent <- r
	}()
	waitFor(t, seeTimeout, func() error {
		for _, tl := range bob.transfers() {
			if tl.Transfer.Direction == "in" && tl.Transfer.Done >= size*2/5 {
				return nil
			}
		}
		return fmt.Errorf("bob has not received 40 %% yet")
	})
	if err := bob.host.Unplug(); err != nil {
		t.Fatal(err)
	}
	unplugged := time.Now()
	waitSees(t, offlineWithin, []*node{alice}, []*node{bob}, "offline")
	var atCut transferOut
	for _, tr := range alice.listTransfers(t) {
		if tr.Direction == "out" {
			atCut = tr
		}
	}
	if atCut.State == "done" || atCut.Done >= size {
		t.Fatalf("the file was through before the unplug took: %+v", atCut)
	}
	t.Logf("unplugged %v with %d of %d bytes sent (alice: %s)", time.Since(unplugged).Round(time.Millisecond), atCut.Done, size, atCut.State)
	if err := bob.host.Replug(); err != nil {
		t.Fatal(err)
	}
	replugged := time.Now()

	select {
	case r := <-sent:
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("send-file did not finish within 40 s of the replug")
	}
	t.Logf("done %v after the replug", time.Since(replugged).Round(time.Millisecond))
	var out transferOut
	for _, tr := range alice.listTransfers(t) {
		if tr.Direction == "out" {
			out = tr
		}
	}
	if out.State != "done" || out.Total != size {
		t.Fatalf("alice lists %+v", out)
	}
	twice := out.Sent - size
	t.Logf("alice sent %d bytes for a %d-byte file: %d twice (%.2f %%)", out.Sent, size, twice, 100*float64(twice)/size)
	if out.Sent < size || twice*20 >= size {
		t.Errorf("alice sent %d bytes for %d: want at least the file and under 5 %% more", out.Sent, size)
	}
	waitedOut := false
	for _, tl := range alice.transfers() {
		if tl.Transfer.State == "waiting" && tl.Transfer.Done > 0 {
			waitedOut = true
		}
	}
	if !waitedOut {
		t.Error("alice's node never gave the stream up while bob was lost")
	}
	got, err := os.ReadFile(filepath.Join(bobDL, "film.bin"))
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("bob's film.bin: %d bytes, %v; want the %d sent", len(got), err, size)
	}
}

// TestSendFileOneShot: with no node running on alice's data directory,
// `send-file` finds bob on the namespace LAN and sends directly. A file
// bob's policy accepts is through when it exits 0; one he must decide on
// makes it exit 3 after --timeout with the offer kept, and once he has
// accepted, the same command again delivers it under the same id.
func TestSendFileOneShot(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	aliceDir := newDataDir(t)
	alice := func(args ...string) cliResult {
		return runCLI(t, lab.Hosts[0], append([]string{"--data-dir", aliceDir, "--name", "alice"}, args...)...)
	}
	var me struct {
		ID string `json:"id"`
	}
	if r := alice("id", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &me) != nil {
		t.Fatalf("%v", r)
	}
	bobDL := newDataDir(t)
	bob := startNode(t, lab.Hosts[1], nodeOpts{name: "bob", logLevel: "info",
		args: []string{"--download-dir", bobDL, "--accept-from", me.ID, "--accept-max-size", "8MB"}})

	src := newDataDir(t)
	file := func(name string, size int) (string, []byte) {
		b := make([]byte, size)
		r := mrand.New(mrand.NewPCG(uint64(size), 2))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p, b
	}
	same := func(name string, want []byte) {
		t.Helper()
		if got, err := os.ReadFile(filepath.Join(bobDL, name)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("bob's %s: %d bytes, %v; want %d", name, len(got), err, len(want))
		}
	}

	small, smallData := file("small.bin", 5<<20)
	if r := alice("send-file", "bob", small); r.code != 0 || !strings.Contains(r.stdout, "verified") {
		t.Fatalf("one-shot, accepted by policy: %v", r)
	}
	same("small.bin", smallData)

	big, bigData := file("big.bin", 20<<20)
	if r := alice("send-file", "--timeout", "3s", "bob", big); r.code != 3 || !strings.Contains(r.stderr, "kept") {
		t.Fatalf("one-shot, bob deciding: %v", r)
	}
	var id string
	for _, tr := range bob.listTransfers(t) {
		if tr.Direction == "in" && tr.State == "offered" && tr.Total == 20<<20 {
			id = tr.ID
		}
	}
	if id == "" {
		t.Fatalf("bob was not asked: %v", bob.cli("transfers"))
	}
	if r := bob.cli("accept", id); r.code != 0 {
		t.Fatalf("%v", r)
	}
	if r := alice("send-file", "--json", "bob", big); r.code != 0 || !strings.Contains(r.stdout, `"id":"`+id+`"`) {
		t.Fatalf("the same command again: %v", r)
	}
	same("big.bin", bigData)
	n := 0
	for _, tr := range bob.listTransfers(t) {
		if tr.Total == 20<<20 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("bob lists %d transfers of big.bin, want the one", n)
	}
}
