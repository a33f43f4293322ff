package filexfer

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/bits"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zeebo/blake3"
)

// ReceiverConfig configures a Receiver. Start from DefaultReceiverConfig.
type ReceiverConfig struct {
	// Dir is the download directory; it is created if missing. Nothing is
	// ever written outside it.
	Dir string
	// Decide is asked about every offer, with the names already made
	// safe; nil accepts, an error wrapping ErrDeclined declines, any other
	// refuses with its text. It may block (a person deciding); the sender
	// waits its ReplyTimeout. A nil Decide accepts everything.
	Decide func(ctx context.Context, o Offer) error
	// MaxEntries bounds the files and folders of one offer.
	MaxEntries int
	// MaxTotal bounds the bytes of one offer.
	MaxTotal int64
	// MaxPartial bounds the unfinished transfers kept in the staging
	// folder; starting one more drops the oldest.
	MaxPartial int
	// SyncBytes and SyncInterval say how often received data is synced
	// and recorded in the journal: what a crash can lose at most. A cut
	// stream loses nothing verified: it is synced on the way out.
	SyncBytes    int64
	SyncInterval time.Duration
	// IdleTimeout bounds every wait on the sender, and every write.
	IdleTimeout time.Duration
	// Progress, when set, is called from the receiving goroutine at most
	// every ProgressEvery and once at the end; it must not block.
	Progress      func(o *Offer, p Progress)
	ProgressEvery time.Duration
	// Log gets warnings; nil discards them.
	Log *slog.Logger

	// In tests: the free space to assume, a spoiled chunk on arrival, and
	// a write failure.
	freeSpace func() (uint64, error)
	corrupt   func(file, chunk uint32) bool
	failWrite func(file uint32, off int64) error
}

// DefaultReceiverConfig returns a configuration for dir that works.
func DefaultReceiverConfig(dir string) ReceiverConfig {
	return ReceiverConfig{
		Dir:           dir,
		MaxEntries:    200_000,
		MaxTotal:      MaxTotal,
		MaxPartial:    32,
		SyncBytes:     64 << 20,
		SyncInterval:  time.Second,
		IdleTimeout:   30 * time.Second,
		ProgressEvery: 100 * time.Millisecond,
	}
}

// Offer is an offer as the recipient sees it.
type Offer struct {
	// Peer is the sender's verified id.
	Peer string
	// ID is the transfer's id, the same on every attempt.
	ID TransferID
	// Entries are the offered files and folders, Path made safe.
	Entries []Entry
	// Files counts the files, Total their bytes.
	Files int
	Total int64
	// Held counts bytes already received and verified by an earlier
	// attempt; Resume is true when there was one.
	Held   int64
	Resume bool
}

// Result says what one receiving attempt did.
type Result struct {
	Offer Offer
	// Placed lists the final names, relative to the download directory,
	// of the files put in place in this attempt.
	Placed []string
	// Received counts file bytes that arrived in this attempt.
	Received int64
	// Changed lists files started over because their source changed.
	Changed []string
}

// Receiver receives transfers into one download directory. It is safe for
// concurrent use: each stream is served by its own Serve call.
type Receiver struct {
	cfg  ReceiverConfig
	root *os.Root
	log  *slog.Logger

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // counts Serve calls under way

	mu     sync.Mutex      // guards active and closed
	active map[string]bool // staging keys being served
	closed bool
}

// maxChunkTries is how often one chunk may fail to verify before the
// transfer gives up with ErrVerify.
const maxChunkTries = 3

// ErrClosed: the Receiver was closed.
var ErrClosed = errors.New("receiver closed")

// NewReceiver opens (creating if needed) the download directory.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if cfg.Dir == "" {
		return nil, errors.New("no download directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := root.Mkdir(StagingDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		root.Close()
		return nil, fmt.Errorf("staging folder: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Receiver{cfg: cfg, root: root, log: log, ctx: ctx, cancel: cancel, active: map[string]bool{}}, nil
}

// Close ends every transfer being received and waits for them; what they
// verified is kept for a resume. It is idempotent.
func (r *Receiver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return r.root.Close()
}

// rfile is the receiving state of one file of the offer.
type rfile struct {
	n         uint32 // chunks
	verified  []uint64
	nverified uint32
	hashes    [][hashLen]byte
	root      *[hashLen]byte // from FILE_END
	queued    bool           // verified whole, waiting to be put in place
	done      bool
	final     string
	redos     int
}

func (f *rfile) has(c uint32) bool {
	return f.verified != nil && f.verified[c/64]&(1<<(c%64)) != 0
}

func (f *rfile) mark(c uint32, h [hashLen]byte) {
	if f.verified == nil {
		f.verified = make([]uint64, (f.n+63)/64)
		f.hashes = make([][hashLen]byte, f.n)
	}
	if !f.has(c) {
		f.verified[c/64] |= 1 << (c % 64)
		f.nverified++
	}
	f.hashes[c] = h
}

func (f *rfile) reset(n uint32) {
	*f = rfile{n: n}
}

func (f *rfile) ranges() []span {
	var out []span
	for c := uint32(0); c < f.n; {
		if !f.has(c) {
			c++
			continue
		}
		s := c
		for c < f.n && f.has(c) {
			c++
		}
		out = append(out, span{s, c})
	}
	return out
}

// heldBytes counts the verified bytes of a file of size with chunk shift.
func (f *rfile) heldBytes(size int64, shift byte) int64 {
	if f.done {
		return size
	}
	var n int64
	for _, w := range f.verified {
		n += int64(bits.OnesCount64(w)) << shift
	}
	if f.n > 0 && f.has(f.n-1) {
		// The last chunk may be short.
		n -= int64(f.n)<<shift - size
	}
	return n
}

// rx is one stream being received; only Serve's goroutine touches it.
type rx struct {
	ctx        context.Context
	r          *Receiver
	conn       net.Conn
	fw         *frameWriter
	fr         *frameReader
	key        string
	dir        string // staging/key, relative to the root
	shift      byte
	offer      Offer
	entries    []Entry // as sent (raw names), updated by CHANGED
	files      []*rfile
	tops       map[string]string // safe top name → its name in the download directory
	journal    *os.File
	stage      *os.Root            // the staging folder: partial files without a walk from the top
	stageDir   *os.File            // the same, as a handle for openat, renameat2, linkat and syncfs
	dirs       map[string]*os.File // folders of the download directory opened for linkat
	made       map[string]bool     // folders made in the download directory
	jbuf       []byte
	res        Result
	changedSet map[uint32]bool // files flagged as changed in HAVE

	handles map[uint32]*os.File
	dirty   map[uint32]bool
	// closedDirty: a partial file was closed before the sync that makes
	// it durable, so the next checkpoint must syncfs. syncfsOK says
	// whether syncfs works here (0 not tried yet, 1 yes, -1 no).
	closedDirty bool
	syncfsOK    int8
	toPlace     []uint32
	batch       chan *batch // the checkpoint under way beside the loop, if any
	cur         struct {
		open        bool
		file, chunk uint32
		got, want   int64
	}
	hasher    *blake3.Hasher
	sinceSync int64
	lastSync  time.Time
	nfiles    int
	ndone     int
	nqueued   int
	bad       int
	badChunks map[[2]uint32]int // failures per file and chunk
	maxBad    int
	prog      Progress
	lastProg  time.Time
}

// Serve receives one transfer from peer (its verified id) over conn, a
// stream the sender opened, and closes conn. It returns when every file
// is verified and in place (nil), or why not; what was verified is kept
// for the next attempt of the same transfer.
func (r *Receiver) Serve(ctx context.Context, conn net.Conn, peer string) (Result, error) {
	defer conn.Close()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Result{}, ErrClosed
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopR := context.AfterFunc(r.ctx, cancel)
	defer stopR()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	x := &rx{ctx: ctx, r: r, conn: conn, fw: newFrameWriter(conn), fr: newFrameReader(conn),
		handles: map[uint32]*os.File{}, dirty: map[uint32]bool{}, hasher: blake3.New(), tops: map[string]string{}}
	x.offer.Peer = peer
	err := x.serve(ctx)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", ErrCancelled, ctx.Err())
	}
	if x.journal != nil {
		// Keep what verified, even when the stream broke.
		if cerr := x.checkpoint(false); cerr != nil && err == nil {
			err = cerr
		}
		x.closeHandles()
		x.journal.Close()
		if x.stage != nil {
			x.stage.Close()
		}
		if x.stageDir != nil {
			x.stageDir.Close()
		}
		x.closeDirs()
		if err == nil {
			r.root.RemoveAll(x.dir)
		}
		r.mu.Lock()
		delete(r.active, x.key)
		r.mu.Unlock()
	}
	if err != nil {
		if tellPeer(err) {
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			x.fw.frame(frameError, appendCode(nil, codeOf(err), err.Error()))
			x.fw.flush()
		}
	}
	x.progress(true)
	x.res.Offer = x.offer
	return x.res, err
}

// deadline refreshes the stream's deadline, unless the context ended: its
// cancellation set a deadline in the past that must stay.
func (x *rx) deadline() {
	x.conn.SetDeadline(time.Now().Add(x.r.cfg.IdleTimeout))
	if x.ctx.Err() != nil {
		x.conn.SetDeadline(time.Unix(1, 0))
	}
}

func (x *rx) serve(ctx context.Context) error {
	cfg := &x.r.cfg
	x.deadline()
	t, p, err := x.fr.next()
	if err != nil {
		return err
	}
	if t == frameError {
		// The sender gave up before offering (a file of it is gone).
		code, reason, err := parseCode(p)
		if err != nil {
			return err
		}
		return &RemoteError{Code: code, Reason: reason}
	}
	if t != frameOffer {
		return fmt.Errorf("%w: %v frame before OFFER", ErrProtocol, t)
	}
	o, err := parseOffer(p)
	if err != nil {
		return err
	}
	if int64(o.Count) > int64(cfg.MaxEntries) {
		return x.reply(fmt.Errorf("%w: %d files and folders, at most %d", ErrRefused, o.Count, cfg.MaxEntries))
	}
	if int64(o.Total) > cfg.MaxTotal {
		return x.reply(fmt.Errorf("%w: %d bytes, at most %d", ErrRefused, o.Total, cfg.MaxTotal))
	}
	x.shift = o.ChunkShift
	x.offer.ID = o.ID
	entries := make([]Entry, 0, min(o.Count, 4096))
	var manifestBytes int
	for uint32(len(entries)) < o.Count {
		x.deadline()
		t, p, err := x.fr.next()
		if err != nil {
			return err
		}
		if t != frameEntries {
			return fmt.Errorf("%w: %v frame in the manifest", ErrProtocol, t)
		}
		// Names are long only in a hostile manifest: the whole is bounded
		// too, since waiting offers hold theirs in memory.
		if manifestBytes += len(p); manifestBytes > MaxManifest {
			return x.reply(fmt.Errorf("%w: a manifest over %d bytes", ErrRefused, MaxManifest))
		}
		es, err := parseEntries(p, int(o.Count)-len(entries))
		if err != nil {
			return err
		}
		entries = append(entries, es...)
	}
	if err := x.checkManifest(entries, o.Total); err != nil {
		return err
	}
	x.entries = entries

	x.key = stagingKey(x.offer.Peer, o.ID)
	x.dir = StagingDir + "/" + x.key
	x.r.mu.Lock()
	busy := x.r.active[x.key]
	if !busy {
		x.r.active[x.key] = true
	}
	x.r.mu.Unlock()
	if busy {
		return fmt.Errorf("%w: this transfer is already being received", ErrCancelled)
	}
	// From here on, Serve's cleanup runs: it needs the journal.
	if err := x.openStaging(); err != nil {
		x.r.mu.Lock()
		delete(x.r.active, x.key)
		x.r.mu.Unlock()
		return err
	}

	var held int64
	for i, f := range x.files {
		if f != nil {
			held += f.heldBytes(x.entries[i].Size, x.shift)
		}
	}
	x.offer.Held = held
	x.prog = Progress{Done: held, Total: x.offer.Total, Files: x.nfiles, FilesDone: x.ndone}
	if free, err := x.freeSpace(); err == nil && uint64(x.offer.Total-held) > free {
		return x.reply(fmt.Errorf("%w: the offer needs %d bytes, %d are free", ErrNoSpace, x.offer.Total-held, free))
	}
	if cfg.Decide != nil {
		if err := x.decide(ctx); err != nil {
			if !errors.Is(err, ErrDeclined) && !errors.Is(err, ErrRefused) && !errors.Is(err, ErrNoSpace) {
				err = fmt.Errorf("%w: %w", ErrRefused, err)
			}
			return x.reply(err)
		}
	}
	if err := x.assignTops(); err != nil {
		return err
	}
	if err := x.sendHaves(); err != nil {
		return err
	}
	x.lastSync = time.Now()
	if x.ndone == x.nfiles {
		return x.finish()
	}
	return x.loop()
}

// decide asks Config.Decide about the offer, which may take a person's
// time. The sender says nothing meanwhile, so a read that returns means
// it hung up (or the node is closing its streams): the question is then
// withdrawn rather than left holding the stream.
func (x *rx) decide(ctx context.Context) error {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	x.conn.SetDeadline(time.Time{})
	if x.ctx.Err() != nil {
		x.conn.SetDeadline(time.Unix(1, 0))
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if _, err := x.fr.r.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			cancel()
		}
	}()
	err := x.r.cfg.Decide(dctx, x.offer)
	// Stop the watch before reading on: Peek leaves the stream as it was.
	x.conn.SetReadDeadline(time.Unix(1, 0))
	<-watched
	x.deadline()
	if err == nil && dctx.Err() != nil {
		err = dctx.Err()
	}
	return err
}

// reply answers the offer with a refusal or decline and ends the stream.
func (x *rx) reply(err error) error {
	x.deadline()
	x.fw.frame(frameReply, appendCode(nil, codeOf(err), err.Error()))
	x.fw.flush()
	return &replied{err}
}

// replied is an error the sender was already told about.
type replied struct{ error }

func (e *replied) Unwrap() error { return e.error }

// checkManifest checks the offer's entries: the sizes add up to the
// total, every name can be made safe, no two make the same name, and no
// file stands where another entry needs a folder.
func (x *rx) checkManifest(entries []Entry, total uint64) error {
	var sum uint64
	safe := make([]Entry, len(entries))
	kinds := make(map[string]bool, len(entries)) // safe path → is a folder
	for i, e := range entries {
		if !e.Dir && uint64(e.Size)>>x.shift >= 1<<31 {
			return fmt.Errorf("%w: file of %d bytes in chunks of 2^%d", ErrProtocol, e.Size, x.shift)
		}
		sum += uint64(e.Size)
		p, err := SafePath(e.Path)
		if err != nil {
			return err
		}
		if _, dup := kinds[p]; dup {
			return fmt.Errorf("%w: two entries named %q", ErrProtocol, p)
		}
		kinds[p] = e.Dir
		e.Path = p
		safe[i] = e
	}
	if sum != total {
		return fmt.Errorf("%w: sizes add up to %d, the offer says %d", ErrProtocol, sum, total)
	}
	for p := range kinds {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if dir, ok := kinds[d]; ok && !dir {
				return fmt.Errorf("%w: %q is a file and a folder", ErrProtocol, d)
			}
		}
	}
	x.offer.Entries = safe
	x.offer.Total = int64(total)
	x.files = make([]*rfile, len(entries))
	for i, e := range entries {
		if !e.Dir {
			x.files[i] = &rfile{n: x.chunks(e.Size)}
			x.nfiles++
		}
	}
	x.offer.Files = x.nfiles
	return nil
}

func (x *rx) chunks(size int64) uint32 { return uint32((size + 1<<x.shift - 1) >> x.shift) }

func (x *rx) chunkLen(size int64, c uint32) int64 {
	return min(int64(1)<<x.shift, size-int64(c)<<x.shift)
}

func stagingKey(peer string, id TransferID) string {
	h := blake3.New()
	h.Write([]byte(peer))
	h.Write([]byte{0})
	h.Write(id[:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (x *rx) freeSpace() (uint64, error) {
	if x.r.cfg.freeSpace != nil {
		return x.r.cfg.freeSpace()
	}
	return freeSpace(x.r.root)
}

// openStaging opens or creates the transfer's staging folder, and when it
// holds an earlier attempt of the same offer, takes over what it verified.
func (x *rx) openStaging() error {
	root := x.r.root
	mpath := x.dir + "/manifest"
	if b, err := readBounded(root, mpath, maxJournal); err == nil {
		if x.resume(b) == nil {
			x.offer.Resume = true
			return x.openStage()
		}
		x.r.log.Warn("dropping an unusable earlier attempt", "transfer", x.offer.ID)
		root.RemoveAll(x.dir)
		for _, f := range x.files {
			if f != nil {
				f.reset(f.n)
			}
		}
		x.tops = map[string]string{}
		x.ndone = 0
	}
	x.evictOld()
	if err := root.Mkdir(x.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return x.writeErr(err)
	}
	m := appendOffer(nil, offer{Version: Version, ID: x.offer.ID, ChunkShift: x.shift, Count: uint32(len(x.entries)), Total: uint64(x.offer.Total)})
	for _, e := range x.entries {
		m = appendEntry(m, e)
	}
	if err := writeSynced(root, mpath, m); err != nil {
		return x.writeErr(err)
	}
	j, err := root.OpenFile(x.dir+"/journal", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return x.writeErr(err)
	}
	x.journal = j
	return x.openStage()
}

func (x *rx) openStage() error {
	st, err := x.r.root.OpenRoot(x.dir)
	if err != nil {
		return x.writeErr(err)
	}
	x.stage = st
	if x.stageDir, err = x.r.root.Open(x.dir); err != nil {
		return x.writeErr(err)
	}
	x.made = map[string]bool{}
	x.dirs = map[string]*os.File{}
	return nil
}

// resume loads an earlier attempt: its manifest must be this offer's
// (same names and kinds, in order); a file whose size, time or inode
// differ is started over and reported as changed.
func (x *rx) resume(m []byte) error {
	if len(m) < offerLen {
		return errBadRecord
	}
	o, err := parseOffer(m[:offerLen])
	if err != nil || o.ChunkShift != x.shift || int(o.Count) != len(x.entries) {
		return errBadRecord
	}
	old, err := parseEntries(m[offerLen:], int(o.Count))
	if err != nil || len(old) != len(x.entries) {
		return errBadRecord
	}
	j, err := x.r.root.OpenFile(x.dir+"/journal", os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	recs, good, err := readJournal(j)
	if err != nil {
		j.Close()
		return err
	}
	if err := j.Truncate(good); err != nil {
		j.Close()
		return err
	}
	if _, err := j.Seek(good, 0); err != nil {
		j.Close()
		return err
	}
	for i := range old {
		if old[i].Path != x.entries[i].Path || old[i].Dir != x.entries[i].Dir {
			j.Close()
			return errBadRecord
		}
	}
	x.journal = j
	for _, rec := range recs {
		x.replay(rec, old)
	}
	// A file recorded as done whose partial is still there did not reach
	// its name: a crash came between the record and the rename. It is
	// placed again, from the chunks the journal holds.
	for i, f := range x.files {
		if f == nil || !f.done {
			continue
		}
		part := x.partName(uint32(i))
		pfi, err := x.r.root.Lstat(part)
		if err != nil {
			continue
		}
		if ffi, err := x.r.root.Lstat(f.final); err == nil && os.SameFile(pfi, ffi) {
			// Linked (where there is no rename without replace): only the
			// partial's removal was lost.
			x.r.root.Remove(part)
			continue
		}
		f.done, f.final = false, ""
	}
	// A file whose partial is gone (someone cleaned up) starts over.
	for i, f := range x.files {
		if f == nil || f.done || f.nverified == 0 {
			continue
		}
		if _, err := x.r.root.Lstat(x.partName(uint32(i))); err != nil {
			f.reset(f.n)
		}
	}
	for i, f := range x.files {
		if f == nil {
			continue
		}
		if !old[i].same(x.entries[i]) {
			f.reset(f.n)
			x.res.Changed = append(x.res.Changed, x.offer.Entries[i].Path)
			x.jbuf = appendRecord(x.jbuf, recReset, resetPayload(uint32(i), x.entries[i]))
			x.r.root.Remove(x.partName(uint32(i)))
			x.changedFlag(uint32(i))
			continue
		}
		if f.done {
			x.ndone++
		}
	}
	return nil
}

// changed remembers which files to flag in HAVE.
func (x *rx) changedFlag(i uint32) {
	if x.changedSet == nil {
		x.changedSet = map[uint32]bool{}
	}
	x.changedSet[i] = true
}

func (x *rx) replay(rec record, old []Entry) {
	p := rec.payload
	switch rec.typ {
	case recChunk:
		if len(p) != 8+hashLen {
			return
		}
		i, c := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
		if int(i) < len(x.files) && x.files[i] != nil && c < x.files[i].n {
			x.files[i].mark(c, [hashLen]byte(p[8:]))
		}
	case recReset:
		if len(p) != 28 {
			return
		}
		i, size, mtime, src, err := parseChanged(p)
		if err != nil || int(i) >= len(x.files) || x.files[i] == nil {
			return
		}
		old[i].Size, old[i].ModTime, old[i].SourceID = size, mtime, src
		x.files[i].reset(x.chunks(size))
	case recDone:
		if len(p) < 4 {
			return
		}
		i := binary.BigEndian.Uint32(p)
		if int(i) < len(x.files) && x.files[i] != nil {
			x.files[i].done = true
			x.files[i].final = string(p[4:])
		}
	case recTop:
		top, name, ok := strings.Cut(string(p), "\x00")
		if ok {
			x.tops[top] = name
		}
	}
}

func resetPayload(i uint32, e Entry) []byte { return appendChanged(nil, i, e) }

// evictOld drops the oldest unfinished transfers beyond MaxPartial.
func (x *rx) evictOld() {
	d, err := x.r.root.Open(StagingDir)
	if err != nil {
		return
	}
	des, _ := d.ReadDir(-1)
	d.Close()
	if len(des) < x.r.cfg.MaxPartial {
		return
	}
	type aged struct {
		name string
		t    time.Time
	}
	var all []aged
	x.r.mu.Lock()
	for _, de := range des {
		if x.r.active[de.Name()] {
			continue
		}
		if fi, err := de.Info(); err == nil {
			all = append(all, aged{de.Name(), fi.ModTime()})
		}
	}
	x.r.mu.Unlock()
	slices.SortFunc(all, func(a, b aged) int { return a.t.Compare(b.t) })
	for i := 0; i <= len(des)-x.r.cfg.MaxPartial && i < len(all); i++ {
		x.r.log.Info("dropping an old unfinished transfer", "staging", all[i].name)
		x.r.root.RemoveAll(StagingDir + "/" + all[i].name)
	}
}

// assignTops gives each folder at the top of the offer its name in the
// download directory, numbered if taken, and creates it, so the names of
// everything below it are fixed for the life of the transfer.
func (x *rx) assignTops() error {
	var order []string
	seen := map[string]bool{}
	for _, e := range x.offer.Entries {
		top, _, nested := strings.Cut(e.Path, "/")
		if (nested || e.Dir) && !seen[top] {
			seen[top] = true
			order = append(order, top)
		}
	}
	for _, top := range order {
		if _, ok := x.tops[top]; ok {
			continue
		}
		var name string
		for i := 0; ; i++ {
			if i > 10000 {
				return x.writeErr(fmt.Errorf("no free name for %q", top))
			}
			name = top
			if i > 0 {
				name = numbered(top, i, true)
			}
			err := x.r.root.Mkdir(name, 0o755)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrExist) {
				return x.writeErr(err)
			}
		}
		x.tops[top] = name
		x.jbuf = appendRecord(x.jbuf, recTop, []byte(top+"\x00"+name))
	}
	return x.flushJournal()
}

func (x *rx) sendHaves() error {
	x.deadline()
	if err := x.fw.frame(frameReply, appendCode(nil, codeOK, "")); err != nil {
		return err
	}
	var p []byte
	for i, f := range x.files {
		if f == nil {
			continue
		}
		h := have{File: uint32(i), Complete: f.done, Changed: x.changedSet[uint32(i)]}
		if !f.done {
			h.Ranges = f.ranges()
		}
		if !h.Complete && !h.Changed && len(h.Ranges) == 0 {
			continue
		}
		for len(h.Ranges) > 0 || h.Complete || h.Changed {
			// A file with many ranges spans several lines.
			part := h
			room := (maxListFrame - haveFixedLen) / 8
			if len(part.Ranges) > room {
				part.Ranges = part.Ranges[:room]
			}
			if len(p)+haveFixedLen+8*len(part.Ranges) > maxListFrame {
				if err := x.fw.frame(frameHave, p); err != nil {
					return err
				}
				p = p[:0]
			}
			p = appendHave(p, part)
			h.Ranges = h.Ranges[len(part.Ranges):]
			h.Complete, h.Changed = false, false
		}
	}
	if len(p) > 0 {
		if err := x.fw.frame(frameHave, p); err != nil {
			return err
		}
	}
	if err := x.fw.frame(frameHaveEnd, nil); err != nil {
		return err
	}
	x.maxBad = 16 + len(x.files)
	return x.fw.flush()
}

// loop receives data until every file is in place.
func (x *rx) loop() error {
	for {
		x.deadline()
		t, p, err := x.fr.next()
		if err != nil {
			return err
		}
		switch t {
		case frameData:
			err = x.data(p)
		case frameChunk:
			err = x.chunkEnd(p)
		case frameFileEnd:
			err = x.fileEnd(p)
		case frameChanged:
			err = x.changed(p)
		case frameError:
			code, reason, perr := parseCode(p)
			if perr != nil {
				return perr
			}
			return &RemoteError{Code: code, Reason: reason}
		default:
			return fmt.Errorf("%w: %v frame from the sender", ErrProtocol, t)
		}
		if err != nil {
			return err
		}
		if x.batch != nil {
			if err := x.pollBatch(); err != nil {
				return err
			}
		}
		if x.needSync() {
			if err := x.checkpoint(true); err != nil {
				return err
			}
			if x.ndone == x.nfiles {
				return x.finish()
			}
		}
	}
}

func (x *rx) needSync() bool {
	if x.nqueued+x.ndone == x.nfiles && x.nqueued > 0 {
		return true
	}
	if x.sinceSync >= x.r.cfg.SyncBytes || len(x.toPlace) >= 4096 || len(x.handles) >= 256 {
		return true
	}
	return (x.sinceSync > 0 || len(x.toPlace) > 0) && time.Since(x.lastSync) >= x.r.cfg.SyncInterval
}

// file checks that i is a file of the offer still being received.
func (x *rx) file(i uint32, t frameType) (*rfile, error) {
	if int(i) >= len(x.files) || x.files[i] == nil {
		return nil, fmt.Errorf("%w: %v for entry %d, not a file of the offer", ErrProtocol, t, i)
	}
	f := x.files[i]
	if f.done || f.queued {
		return nil, fmt.Errorf("%w: %v for %q, which is already complete", ErrProtocol, t, x.offer.Entries[i].Path)
	}
	return f, nil
}

func (x *rx) data(p []byte) error {
	if len(p) <= dataHeaderLen {
		return fmt.Errorf("%w: DATA of %d bytes", ErrProtocol, len(p))
	}
	i, c := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
	b := p[dataHeaderLen:]
	f, err := x.file(i, frameData)
	if err != nil {
		return err
	}
	if !x.cur.open {
		if c >= f.n || f.has(c) {
			return fmt.Errorf("%w: DATA for chunk %d of %q, not expected", ErrProtocol, c, x.offer.Entries[i].Path)
		}
		x.cur.open, x.cur.file, x.cur.chunk, x.cur.got = true, i, c, 0
		x.cur.want = x.chunkLen(x.entries[i].Size, c)
		x.hasher.Reset()
	} else if x.cur.file != i || x.cur.chunk != c {
		return fmt.Errorf("%w: DATA for chunk %d/%d inside chunk %d/%d", ErrProtocol, i, c, x.cur.file, x.cur.chunk)
	}
	if x.cur.got+int64(len(b)) > x.cur.want {
		return fmt.Errorf("%w: chunk %d of %q longer than %d bytes", ErrProtocol, c, x.offer.Entries[i].Path, x.cur.want)
	}
	if x.r.cfg.corrupt != nil && x.r.cfg.corrupt(i, c) {
		b[0] ^= 0xff
	}
	h, err := x.handle(i)
	if err != nil {
		return err
	}
	off := int64(c)<<x.shift + x.cur.got
	if x.r.cfg.failWrite != nil {
		if err := x.r.cfg.failWrite(i, off); err != nil {
			return x.writeErr(err)
		}
	}
	if _, err := h.WriteAt(b, off); err != nil {
		return x.writeErr(err)
	}
	x.dirty[i] = true
	x.hasher.Write(b)
	x.cur.got += int64(len(b))
	x.res.Received += int64(len(b))
	return nil
}

func (x *rx) chunkEnd(p []byte) error {
	i, c, sum, err := parseHashed(p, frameChunk)
	if err != nil {
		return err
	}
	f, err := x.file(i, frameChunk)
	if err != nil {
		return err
	}
	if !x.cur.open || x.cur.file != i || x.cur.chunk != c || x.cur.got != x.cur.want {
		return fmt.Errorf("%w: CHUNK %d/%d does not end the chunk being received", ErrProtocol, i, c)
	}
	x.cur.open = false
	var got [hashLen]byte
	x.hasher.Sum(got[:0])
	if got != sum {
		x.bad++
		if x.badChunks == nil {
			x.badChunks = map[[2]uint32]int{}
		}
		x.badChunks[[2]uint32{i, c}]++
		x.r.log.Warn("chunk did not verify; asking for it again", "file", x.offer.Entries[i].Path, "chunk", c)
		if n := x.badChunks[[2]uint32{i, c}]; n > maxChunkTries {
			return fmt.Errorf("%w: chunk %d of %s failed %d times", ErrVerify, c, x.offer.Entries[i].Path, n)
		}
		if x.bad > x.maxBad {
			return fmt.Errorf("%w: %d chunks did not verify", ErrVerify, x.bad)
		}
		if err := x.send(frameNack, appendPair(nil, i, c)); err != nil {
			return err
		}
		return x.fw.flush()
	}
	f.mark(c, sum)
	if h := x.handles[i]; h != nil && x.cur.want >= 1<<20 {
		// Start writing the chunk to disk now, without waiting, so the
		// checkpoint's sync finds little left to do.
		startWriteback(h, int64(c)<<x.shift, x.cur.want)
	}
	x.jbuf = appendRecord(x.jbuf, recChunk, append(appendPair(nil, i, c), sum[:]...))
	x.sinceSync += x.cur.want
	x.prog.Done += x.cur.want
	x.prog.Current, x.prog.CurrentSize = x.offer.Entries[i].Path, x.offer.Entries[i].Size
	x.progress(false)
	return x.maybeQueue(i)
}

func (x *rx) fileEnd(p []byte) error {
	i, n, sum, err := parseHashed(p, frameFileEnd)
	if err != nil {
		return err
	}
	f, err := x.file(i, frameFileEnd)
	if err != nil {
		return err
	}
	if n != f.n {
		return fmt.Errorf("%w: FILE_END says %d chunks, the file has %d", ErrProtocol, n, f.n)
	}
	if x.cur.open && x.cur.file == i {
		return fmt.Errorf("%w: FILE_END inside a chunk", ErrProtocol)
	}
	f.root = &sum
	return x.maybeQueue(i)
}

// maybeQueue queues file i to be put in place once every chunk verified
// and the file hash matches; a mismatch asks for the whole file again.
func (x *rx) maybeQueue(i uint32) error {
	f := x.files[i]
	if f.root == nil || f.nverified != f.n {
		return nil
	}
	if got := fileHash(f.hashes); got != *f.root {
		f.redos++
		name := x.offer.Entries[i].Path
		x.r.log.Warn("file did not verify; asking for all of it again", "file", name)
		if f.redos > 2 {
			return fmt.Errorf("%w: %s", ErrVerify, name)
		}
		redos := f.redos
		f.reset(f.n)
		f.redos = redos
		x.jbuf = appendRecord(x.jbuf, recReset, resetPayload(i, x.entries[i]))
		if err := x.send(frameRedo, appendPair(nil, i, 0)); err != nil {
			return err
		}
		return x.fw.flush()
	}
	if err := x.seal(i); err != nil {
		return err
	}
	f.queued = true
	x.nqueued++
	x.toPlace = append(x.toPlace, i)
	return nil
}

// seal gives a verified file, whose data will not change again, its mode
// and time by its handle, and closes the handle where the checkpoint's
// syncfs will make it durable: many small files then hold no handles, and
// the checkpoint that places them has nothing left to do per file but
// the rename.
func (x *rx) seal(i uint32) error {
	e := x.entries[i]
	h, err := x.handle(i)
	if err != nil {
		return err
	}
	if err := h.Chmod(fileMode(e.Mode)); err != nil {
		return x.writeErr(err)
	}
	err = setTimes(h, e.mtime())
	if errors.Is(err, errors.ErrUnsupported) {
		err = x.stage.Chtimes(partBase(i), e.mtime(), e.mtime())
	}
	if err != nil {
		return x.writeErr(err)
	}
	if !haveSyncFS || x.cur.open && x.cur.file == i {
		return nil
	}
	if x.syncfsOK == 0 {
		// Once per transfer: a file system that refuses syncfs keeps its
		// handles open and is synced file by file.
		x.syncfsOK = -1
		if syncFS(x.stageDir) == nil {
			x.syncfsOK = 1
		}
	}
	if x.syncfsOK < 0 {
		return nil
	}
	if x.dirty[i] {
		x.closedDirty = true
	}
	delete(x.handles, i)
	if err := h.Close(); err != nil {
		return x.writeErr(err)
	}
	return nil
}

func (x *rx) changed(p []byte) error {
	i, size, mtime, src, err := parseChanged(p)
	if err != nil {
		return err
	}
	f, err := x.file(i, frameChanged)
	if err != nil {
		return err
	}
	if x.cur.open && x.cur.file == i {
		return fmt.Errorf("%w: CHANGED inside a chunk", ErrProtocol)
	}
	e := x.entries[i]
	total := x.offer.Total - e.Size + size
	if total > x.r.cfg.MaxTotal || total > MaxTotal || uint64(size)>>x.shift >= 1<<31 {
		return fmt.Errorf("%w: %q grew to %d bytes", ErrRefused, x.offer.Entries[i].Path, size)
	}
	x.prog.Done -= f.heldBytes(e.Size, x.shift)
	x.offer.Total, x.prog.Total = total, total
	e.Size, e.ModTime, e.SourceID = size, mtime, src
	x.entries[i] = e
	x.offer.Entries[i].Size, x.offer.Entries[i].ModTime = size, mtime
	f.reset(x.chunks(size))
	if h := x.handles[i]; h != nil {
		if err := h.Truncate(0); err != nil {
			return x.writeErr(err)
		}
	}
	x.jbuf = appendRecord(x.jbuf, recReset, resetPayload(i, e))
	x.res.Changed = append(x.res.Changed, x.offer.Entries[i].Path)
	x.r.log.Info("source changed; starting the file over", "file", x.offer.Entries[i].Path)
	return nil
}

// partName is file i's partial file, relative to the download directory;
// partBase the same relative to the staging folder.
func (x *rx) partName(i uint32) string { return x.dir + "/" + partBase(i) }
func partBase(i uint32) string         { return strconv.FormatUint(uint64(i), 10) + ".part" }

// handle returns the open partial file of i.
func (x *rx) handle(i uint32) (*os.File, error) {
	if h := x.handles[i]; h != nil {
		return h, nil
	}
	h, err := openPart(x.stageDir, partBase(i))
	if errors.Is(err, errors.ErrUnsupported) {
		h, err = x.stage.OpenFile(partBase(i), os.O_RDWR|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, x.writeErr(err)
	}
	x.handles[i] = h
	return h, nil
}

func (x *rx) closeHandles() {
	for i, h := range x.handles {
		h.Close()
		delete(x.handles, i)
	}
}

// writeErr classifies a local write failure: a full disk is ErrNoSpace,
// anything else ErrWrite.
func (x *rx) writeErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return fmt.Errorf("%w: %w", ErrWrite, err)
}

func (x *rx) send(t frameType, p []byte) error {
	x.deadline()
	return x.fw.frame(t, p)
}

// checkpoint makes what arrived durable: it syncs the partial files,
// records their verified chunks, puts the verified files in place, and
// tells the sender (when talk is set) which are done. When many small
// files were closed since the last one, that work goes to a goroutine of
// its own (see batch) and receiving goes on meanwhile; a checkpoint
// first waits for the one before, so there is at most one under way and
// the journal is written in order.
func (x *rx) checkpoint(talk bool) error {
	if err := x.waitBatch(talk); err != nil {
		return err
	}
	if talk && x.closedDirty && x.syncfsOK > 0 && x.nqueued+x.ndone < x.nfiles {
		x.startBatch()
		return nil
	}
	if len(x.dirty) > 0 {
		if err := x.syncDirty(); err != nil {
			return err
		}
	}
	if err := x.writeJournal(&x.jbuf); err != nil {
		return err
	}
	x.sinceSync = 0
	x.lastSync = time.Now()
	var placed []uint32
	var names []string
	var err error
	if len(x.toPlace) > 0 {
		placed, names, err = x.place(x.toPlace, &x.jbuf)
		x.toPlace = x.toPlace[:0]
		x.placed(placed, names)
	}
	x.closeIdle()
	if err != nil {
		return err
	}
	if !talk {
		return nil
	}
	return x.tellDone(placed)
}

// batch is a checkpoint of many small files done beside the receiving
// loop: syncfs, which makes every file written so far durable (closed
// ones too), then the records of the chunks they hold, synced, then
// their final names, exactly the steps and the order of a checkpoint in
// line, so what a crash leaves is the same. It costs the disk's wait for
// the sync, which the loop would otherwise spend idle, while the next
// files arrive and are created. Only the goroutine running it touches the
// journal and the folder handles until it is collected; the state of the
// files it placed is updated when it is.
type batch struct {
	jbuf   []byte   // records of what was received before it started
	files  []uint32 // verified files to put in place
	placed []uint32 // the ones placed, and their names
	names  []string
	err    error
}

func (x *rx) startBatch() {
	b := &batch{jbuf: x.jbuf, files: x.toPlace}
	x.jbuf, x.toPlace = nil, nil
	// The syncfs below covers every byte written so far.
	clear(x.dirty)
	x.closedDirty = false
	x.sinceSync = 0
	x.lastSync = time.Now()
	x.closeIdle()
	done := make(chan *batch, 1)
	x.batch = done
	go func() {
		if err := syncFS(x.stageDir); err != nil {
			b.err = x.writeErr(err)
		} else if b.err = x.writeJournal(&b.jbuf); b.err == nil && len(b.files) > 0 {
			b.placed, b.names, b.err = x.place(b.files, &b.jbuf)
		}
		done <- b
	}()
}

// waitBatch collects the batch under way, if any: the files it placed
// are done, and (when talk is set) the sender is told.
func (x *rx) waitBatch(talk bool) error {
	if x.batch == nil {
		return nil
	}
	b := <-x.batch
	x.batch = nil
	return x.batchDone(b, talk)
}

// pollBatch collects the batch under way if it has ended.
func (x *rx) pollBatch() error {
	select {
	case b := <-x.batch:
		x.batch = nil
		return x.batchDone(b, true)
	default:
		return nil
	}
}

func (x *rx) batchDone(b *batch, talk bool) error {
	x.placed(b.placed, b.names)
	if b.err != nil {
		return b.err
	}
	if !talk {
		return nil
	}
	return x.tellDone(b.placed)
}

// closeIdle closes the partial files not being written.
func (x *rx) closeIdle() {
	for i, h := range x.handles {
		if !x.cur.open || x.cur.file != i {
			h.Close()
			delete(x.handles, i)
		}
	}
}

func (x *rx) tellDone(placed []uint32) error {
	if len(placed) == 0 {
		return nil
	}
	for _, i := range placed {
		if err := x.send(frameFileDone, appendPair(nil, i, 0)); err != nil {
			return err
		}
	}
	return x.fw.flush()
}

func (x *rx) syncDirty() error {
	if len(x.dirty) > 16 || x.closedDirty {
		// One syncfs is far cheaper than thousands of fsyncs when many
		// small files arrived, and the only way to sync closed ones.
		err := syncFS(x.stageDir)
		if err == nil {
			clear(x.dirty)
			x.closedDirty = false
			return nil
		}
		if x.closedDirty {
			return x.writeErr(err)
		}
	}
	for i := range x.dirty {
		if h := x.handles[i]; h != nil {
			if err := h.Sync(); err != nil {
				return x.writeErr(err)
			}
		}
	}
	clear(x.dirty)
	return nil
}

func (x *rx) flushJournal() error { return x.writeJournal(&x.jbuf) }

// writeJournal appends the records in buf to the journal, synced, and
// empties buf.
func (x *rx) writeJournal(buf *[]byte) error {
	if len(*buf) == 0 {
		return nil
	}
	if _, err := x.journal.Write(*buf); err != nil {
		return x.writeErr(err)
	}
	if err := x.journal.Sync(); err != nil {
		return x.writeErr(err)
	}
	*buf = (*buf)[:0]
	return nil
}

// finalName is the name file i would get on its i-th try.
func (x *rx) finalName(i uint32, try int) string {
	p := x.offer.Entries[i].Path
	top, rest, nested := strings.Cut(p, "/")
	if nested {
		p = x.tops[top] + "/" + rest
	}
	if try == 0 {
		return p
	}
	dir, base := path.Split(p)
	return dir + numbered(base, try, false)
}

// place puts verified files under their final names, never over an
// existing file. Each name is recorded in the journal before the file
// takes it, so a crash in between is recognised on resume; the records
// go through jbuf. It returns the files placed and their names, for
// placed to record; it changes no state of the files itself, so a batch
// may run it beside the receiving loop.
func (x *rx) place(files []uint32, jbuf *[]byte) ([]uint32, []string, error) {
	root := x.r.root
	chosen := make(map[string]bool, len(files))
	names := make([]string, len(files))
	pick := func(k int, from int) error {
		i := files[k]
		for try := from; ; try++ {
			if try > 10000 {
				return x.writeErr(fmt.Errorf("no free name for %q", x.offer.Entries[i].Path))
			}
			// No look first: the link below fails on a taken name, and a
			// look per file costs a walk through os.Root.
			n := x.finalName(i, try)
			if chosen[n] {
				continue
			}
			chosen[n] = true
			names[k] = n
			*jbuf = appendRecord(*jbuf, recDone, append(binary.BigEndian.AppendUint32(nil, i), n...))
			return nil
		}
	}
	for k := range files {
		if err := pick(k, 0); err != nil {
			return nil, nil, err
		}
	}
	if err := x.writeJournal(jbuf); err != nil {
		return nil, nil, err
	}
	var placed []uint32
	for k, i := range files {
		part := x.partName(i)
		var moved bool
		for try := 1; ; try++ {
			n := names[k]
			if d := path.Dir(n); d != "." && !x.made[d] {
				if err := root.MkdirAll(d, 0o755); err != nil {
					return placed, names[:len(placed)], x.writeErr(err)
				}
				x.made[d] = true
			}
			var err error
			moved, err = x.placeLink(i, part, n)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrExist) || try > 100 {
				return placed, names[:len(placed)], x.writeErr(err)
			}
			// Taken since we looked: the next number, recorded again.
			if err := pick(k, try); err != nil {
				return placed, names[:len(placed)], err
			}
			if err := x.writeJournal(jbuf); err != nil {
				return placed, names[:len(placed)], err
			}
		}
		if !moved {
			x.stage.Remove(partBase(i))
		}
		placed = append(placed, i)
	}
	return placed, names, nil
}

// placed records files put in place by place, under names.
func (x *rx) placed(files []uint32, names []string) {
	for k, i := range files {
		f := x.files[i]
		f.done, f.queued, f.final = true, false, names[k]
		f.hashes, f.verified = nil, nil
		x.nqueued--
		x.ndone++
		x.prog.FilesDone++
		x.res.Placed = append(x.res.Placed, names[k])
	}
}

// placeLink gives partial file i (part, from the top) the name n, never
// over an existing one; moved says the partial name is gone with it. It
// goes by folder handles where it can: the folder is opened once through
// the root, so it cannot lead outside, and the last element is a plain
// name. A rename that refuses to replace is one step; where the file
// system lacks it, a hard link (the partial stays, and is removed after).
func (x *rx) placeLink(i uint32, part, n string) (moved bool, err error) {
	d, base := path.Split(n)
	d = strings.TrimSuffix(d, "/")
	if d == "" {
		d = "."
	}
	dir := x.dirs[d]
	if dir == nil {
		if len(x.dirs) >= 256 {
			if x.syncfsOK < 0 {
				// Without syncfs, syncNames syncs the folders it holds.
				if err := x.syncNames(); err != nil {
					return false, err
				}
			}
			x.closeDirs()
		}
		if dir, err = x.r.root.Open(d); err != nil {
			return false, err
		}
		x.dirs[d] = dir
	}
	err = renameNoReplace(x.stageDir, partBase(i), dir, base)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err == nil, err
	}
	err = linkAt(x.stageDir, partBase(i), dir, base)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return false, err
	}
	return false, link(x.r.root, part, n)
}

func (x *rx) closeDirs() {
	for d, f := range x.dirs {
		f.Close()
		delete(x.dirs, d)
	}
}

// link gives the partial file its final name without replacing anything:
// a hard link fails if the name is taken. Where the file system has no
// hard links, a rename after the check place made is the fallback.
func link(root *os.Root, part, name string) error {
	err := root.Link(part, name)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) {
		if _, serr := root.Lstat(name); serr == nil {
			return fs.ErrExist
		}
		return root.Rename(part, name)
	}
	return err
}

// fileMode and dirMode make permission bits sane: never world-writable,
// always readable and writable by the owner (folders searchable). The
// wire carries only the nine permission bits, so no setuid or sticky.
func fileMode(m fs.FileMode) fs.FileMode { return (m.Perm() &^ 0o002) | 0o600 }
func dirMode(m fs.FileMode) fs.FileMode  { return (m.Perm() &^ 0o002) | 0o700 }

// finish creates the folders (empty ones too), gives them their modes and
// times, deepest first so that creating a child does not touch a parent
// after, and tells the sender all is done.
func (x *rx) finish() error {
	root := x.r.root
	var dirs []int
	for i, e := range x.offer.Entries {
		if e.Dir {
			dirs = append(dirs, i)
		}
	}
	dirName := func(p string) string {
		top, rest, nested := strings.Cut(p, "/")
		if nested {
			return x.tops[top] + "/" + rest
		}
		return x.tops[top]
	}
	for _, i := range dirs {
		if err := root.MkdirAll(dirName(x.offer.Entries[i].Path), 0o755); err != nil {
			return x.writeErr(err)
		}
	}
	slices.SortFunc(dirs, func(a, b int) int {
		return strings.Count(x.offer.Entries[b].Path, "/") - strings.Count(x.offer.Entries[a].Path, "/")
	})
	for _, i := range dirs {
		e := x.entries[i]
		n := dirName(x.offer.Entries[i].Path)
		if err := root.Chmod(n, dirMode(e.Mode)); err != nil {
			return x.writeErr(err)
		}
		if err := root.Chtimes(n, e.mtime(), e.mtime()); err != nil {
			return x.writeErr(err)
		}
	}
	// The sender forgets the transfer on COMPLETE, so the last names
	// given and the folders are made durable first.
	if err := x.syncNames(); err != nil {
		return err
	}
	x.deadline()
	if err := x.fw.frame(frameComplete, nil); err != nil {
		return err
	}
	return x.fw.flush()
}

// syncNames makes the renames and folders of the transfer durable: one
// syncfs, or where there is none, an fsync of each folder renamed into.
func (x *rx) syncNames() error {
	if haveSyncFS && x.syncfsOK >= 0 && x.stageDir != nil {
		if err := syncFS(x.stageDir); err == nil {
			return nil
		}
	}
	for _, d := range x.dirs {
		if err := d.Sync(); err != nil {
			return x.writeErr(err)
		}
	}
	return nil
}

func (x *rx) progress(final bool) {
	cb := x.r.cfg.Progress
	if cb == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(x.lastProg) < x.r.cfg.ProgressEvery {
		return
	}
	x.lastProg = now
	cb(&x.offer, x.prog)
}

// readBounded reads a small file of ours, refusing one over max.
func readBounded(root *os.Root, name string, max int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max || !fi.Mode().IsRegular() {
		return nil, errBadRecord
	}
	b := make([]byte, fi.Size())
	_, err = f.ReadAt(b, 0)
	return b, err
}

// writeSynced writes a file of ours through a temporary name and a
// rename, synced, so it is whole or absent.
func writeSynced(root *os.Root, name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return root.Rename(tmp, name)
}
