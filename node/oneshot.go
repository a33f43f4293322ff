package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"lanchat/discovery"
	"lanchat/internal/netkey"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/chat"
	"lanchat/node/api"
)

// OneShot is the local API when no node runs on the data directory: it
// finds peers by mDNS and the Join addresses, asks them over TLS who is
// on the network (the directory stream), and talks to one directly. It
// never joins the gossip, so others do not see it come and go. What it
// sends goes through the same chat service as a running node's, with the
// directory for presence; reads use that service with nobody online.
type OneShot struct {
	cfg    Config
	id     *mesh.Identity
	dialer *mesh.Dialer
	// network is the office key ring; empty in an open network.
	network netkey.Ring
	log     *slog.Logger

	// Wait bounds discovery.
	Wait time.Duration
}

var _ api.API = (*OneShot)(nil)

// NewOneShot loads (or creates) the data directory's identity.
func NewOneShot(cfg Config) (*OneShot, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkDataDir(cfg.DataDir, cfg.Logger); err != nil {
		return nil, err
	}
	id, err := mesh.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	d, err := mesh.NewDialer(id)
	if err != nil {
		return nil, err
	}
	ring, weak, err := loadNetwork(cfg.NetworkKeyFile)
	if err != nil {
		return nil, err
	}
	if weak != "" {
		cfg.Logger.Warn(weak)
	}
	d.SetNetwork(ring)
	return &OneShot{cfg: cfg, id: id, dialer: d, network: ring, log: cfg.Logger, Wait: 3 * time.Second}, nil
}

// Identity is the data directory's identity.
func (o *OneShot) Identity() *mesh.Identity { return o.id }

// discoveryGrace is how long a one-shot keeps listening for more
// directories after the first answered.
const discoveryGrace = 400 * time.Millisecond

// Discover collects what the network says about its peers until enough
// returns true for what is known so far (after at least one directory
// answered), or Wait passes. Peers are merged by id; a peer's own answer
// about itself wins over what others say of it.
func (o *OneShot) Discover(ctx context.Context, enough func([]mesh.Peer) bool) ([]mesh.Peer, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()

	var (
		mu       sync.Mutex // guards the fields below
		peers    = map[string]mesh.Peer{}
		fromSelf = map[string]bool{}
		asked    = map[string]bool{}
		answered int
		errs     []error
	)
	update := make(chan struct{}, 1)
	var wg sync.WaitGroup
	ask := func(addr, expect string) {
		mu.Lock()
		if asked[addr] {
			mu.Unlock()
			return
		}
		asked[addr] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			list, err := o.dialer.FetchDirectory(ctx, addr, expect)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			answered++
			for i, p := range list {
				if p.ID == o.id.ID {
					continue
				}
				if i == 0 {
					peers[p.ID] = p
					fromSelf[p.ID] = true
				} else if !fromSelf[p.ID] {
					if old, ok := peers[p.ID]; !ok || (!old.Online() && p.Online()) {
						peers[p.ID] = p
					}
				}
			}
			select {
			case update <- struct{}{}:
			default:
			}
		}()
	}
	join := o.cfg.Join
	var known []mesh.KnownAddr
	if len(join) == 0 {
		// As a node would start: the seeds last given, and the peers'
		// last verified addresses, each asked with its key expected.
		f, err := loadPeers(o.cfg.DataDir)
		if err != nil {
			o.log.Warn("ignoring remembered peers", "err", err)
		}
		join, known = f.Seeds, f.Peers[:min(len(f.Peers), oneShotKnown)]
	}
	for _, k := range known {
		ask(k.TLS.String(), k.ID)
	}
	for _, j := range join {
		host, port, err := net.SplitHostPort(j)
		if err != nil {
			return nil, &ConfigError{Field: "Join", Err: fmt.Errorf("%q: %w", j, err)}
		}
		// --join names a gossip port; a one-shot speaks TLS only, so it
		// tries that port and the default TLS port of the same host.
		ask(j, "")
		if port != strconv.Itoa(mesh.DefaultTLSPort) {
			ask(net.JoinHostPort(host, strconv.Itoa(mesh.DefaultTLSPort)), "")
		}
	}
	if !o.cfg.NoMDNS {
		dcfg := discovery.DefaultConfig()
		_, ifi, _, err := chooseAddr(o.cfg.Bind, o.cfg.Iface)
		if err == nil {
			dcfg.Iface = ifi
		}
		dcfg.Logger = o.log.With("part", "discovery")
		d, err := discovery.New(dcfg)
		if err != nil {
			o.log.Warn("mDNS discovery is off", "err", err)
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.Run(ctx, func(c discovery.Candidate) {
					if c.Proto != mesh.ProtocolVersion || !sameNetwork(o.network, c.Network) {
						return
					}
					for _, a := range c.Addrs {
						ask(netip.AddrPortFrom(a, c.TLSPort).String(), c.ID)
					}
				})
			}()
		}
	}
	snapshot := func() ([]mesh.Peer, int) {
		mu.Lock()
		defer mu.Unlock()
		out := make([]mesh.Peer, 0, len(peers))
		for _, p := range peers {
			out = append(out, p)
		}
		return out, answered
	}
	defer wg.Wait()
	defer cancel()
	// Any one directory holds the whole membership as that peer sees it,
	// so once one has answered, others get a short grace to add theirs.
	var grace <-chan time.Time
	for {
		select {
		case <-update:
			list, n := snapshot()
			if n > 0 && enough != nil && enough(list) {
				return sortPeers(list), nil
			}
			if n > 0 && grace == nil {
				grace = time.After(discoveryGrace)
			}
		case <-grace:
			list, _ := snapshot()
			return sortPeers(list), nil
		case <-ctx.Done():
			list, n := snapshot()
			if n == 0 {
				mu.Lock()
				defer mu.Unlock()
				if len(errs) > 0 {
					return nil, fmt.Errorf("no peer answered: %w", errors.Join(errs...))
				}
				return nil, nil
			}
			return sortPeers(list), nil
		}
	}
}

// oneShotKnown is how many remembered peers (the most recently seen) a
// one-shot asks at once: any one directory holds the whole membership.
const oneShotKnown = 8

func sortPeers(list []mesh.Peer) []mesh.Peer {
	m := map[string]mesh.Peer{}
	for _, p := range list {
		m[p.ID] = p
	}
	out := make([]mesh.Peer, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b mesh.Peer) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Self is this data directory's identity and saved presence; no node
// runs, so it is not Running.
func (o *OneShot) Self(ctx context.Context) (api.Self, error) {
	pres, err := loadPresence(o.cfg.DataDir)
	if err != nil {
		o.log.Warn("ignoring saved presence", "err", err)
	}
	return api.Self{ID: o.id.ID, Name: o.cfg.Name, State: pres.state.String(), StatusText: pres.text, MDNS: !o.cfg.NoMDNS, Fingerprint: fingerprint(o.id.ID)}, nil
}

// Peers asks the network: the first directory to answer (and any others
// within a short grace) tell who is there.
func (o *OneShot) Peers(ctx context.Context) ([]api.Peer, error) {
	list, err := o.Discover(ctx, func([]mesh.Peer) bool { return true })
	if err != nil {
		return nil, apiError(err)
	}
	out := apiPeers(list)
	for i := range out {
		// A directory does not say what its node reaches (mesh.Peer's
		// Reachable is not on the wire); online is all a one-shot knows.
		out[i].Reachable = out[i].Online()
	}
	// What the contact book makes of each; without it (a history that
	// will not open) the list is still worth having.
	if err := o.offline(func(svc *chat.Service) error { withTrust(svc, out); return nil }); err != nil {
		o.log.Warn("peers shown without trust", "err", err)
	}
	return out, nil
}

// SetStatus keeps the presence for the next node started on the data
// directory.
func (o *OneShot) SetStatus(ctx context.Context, req api.StatusRequest) (api.StatusReply, error) {
	st, err := parseStatus(req)
	if err != nil {
		return api.StatusReply{}, err
	}
	if err := savePresence(o.cfg.DataDir, presence{state: st, text: req.Text}); err != nil {
		return api.StatusReply{}, apiError(err)
	}
	return api.StatusReply{State: st.String(), Text: req.Text}, nil
}

// Events needs a running node.
func (o *OneShot) Events(ctx context.Context, fn func(api.Event) error) error {
	return api.ErrNotRunning
}

// History reads the data directory's history; with MarkRead the
// receipts wait in the outbox for the next node.
func (o *OneShot) History(ctx context.Context, q api.HistoryQuery) ([]api.HistoryEntry, error) {
	var out []api.HistoryEntry
	err := o.offline(func(svc *chat.Service) (err error) {
		out, err = history(ctx, svc, q)
		return err
	})
	return out, err
}

// Outbox summarises what waits for whom.
func (o *OneShot) Outbox(ctx context.Context) ([]api.OutboxEntry, error) {
	var out []api.OutboxEntry
	err := o.offline(func(svc *chat.Service) error {
		es, err := svc.Outbox(ctx)
		out = apiOutbox(es)
		return apiError(err)
	})
	return out, err
}

// MarkRead records what a person saw; the receipts go out with the next
// node.
func (o *OneShot) MarkRead(ctx context.Context, req api.ReadRequest) error {
	return o.offline(func(svc *chat.Service) error { return markRead(ctx, svc, req) })
}

// offline runs f on a chat service over the data directory's history
// with nobody online and nothing to send with.
func (o *OneShot) offline(f func(*chat.Service) error) error {
	svc, closeAll, err := o.chatService(nil, nil)
	if err != nil {
		return apiError(err)
	}
	defer closeAll()
	return f(svc)
}

// chatService opens the history and builds a chat service on it.
func (o *OneShot) chatService(pres chat.Presence, tr chat.Transport) (*chat.Service, func(), error) {
	st, err := openStore(o.cfg.DataDir, o.cfg.Sync, o.log)
	if err != nil {
		return nil, nil, err
	}
	svc, err := chat.New(chat.Config{
		Store: st, Self: o.id.ID, Key: o.id.Key, Name: func() string { return o.cfg.Name },
		Presence: pres, Transport: tr,
		ContactsPath: filepath.Join(o.cfg.DataDir, ContactsFile),
		Logger:       o.log.With("part", "chat"),
	})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return svc, func() { svc.Close(); st.Close() }, nil
}

// Send finds the recipient on the network (or among the contacts of
// earlier runs), stores the message in the data directory's outbox and,
// if the recipient is online, delivers their whole outbox, oldest
// first, directly. If not, the message stays queued for the next node
// run on this data directory; with Wait, Send keeps looking for the
// recipient until the timeout.
func (o *OneShot) Send(ctx context.Context, req api.SendRequest) (api.SendReply, error) {
	if err := chat.CheckText(req.Text); err != nil {
		return api.SendReply{}, apiError(err)
	}
	ctx, cancel := context.WithTimeout(ctx, req.Timeout())
	defer cancel()
	if strings.HasPrefix(strings.TrimSpace(req.To), "#") {
		return o.sendRoom(ctx, req)
	}
	dir := &directory{peers: map[string]mesh.Peer{}}
	msvc := o.messageService(dir)
	defer msvc.Close()
	svc, closeAll, err := o.chatService(dir, msvc)
	if err != nil {
		return api.SendReply{}, apiError(err)
	}
	defer closeAll()
	runCtx, stopRun := context.WithCancel(context.Background())
	running := make(chan struct{})
	go func() {
		defer close(running)
		svc.Run(runCtx)
	}()
	defer func() { stopRun(); <-running }()

	p, err := o.findRecipient(ctx, req.To, dir, svc)
	if err != nil {
		return api.SendReply{}, err
	}
	if req.Wait && !p.Online() {
		// Keep looking while Send waits; the chat service delivers as
		// soon as the directory shows the recipient online.
		go func() {
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				ps, _ := o.Discover(ctx, func(ps []mesh.Peer) bool {
					for _, q := range ps {
						if q.ID == p.ID {
							return q.Online()
						}
					}
					return false
				})
				for _, q := range ps {
					if q.ID == p.ID && q.Online() {
						dir.set([]mesh.Peer{q})
						svc.PeerOnline(q.ID)
						return
					}
				}
			}
		}()
	}
	return send(ctx, svc, api.SendRequest{To: p.ID, Text: req.Text, Wait: req.Wait})
}

// messageService sends to the peers the directory lists, at the
// addresses it gives; a one-shot receives nothing.
func (o *OneShot) messageService(dir *directory) *message.Service {
	scfg := message.DefaultConfig()
	scfg.Self = o.id.ID
	scfg.Name = func() string { return o.cfg.Name }
	scfg.Key = o.id.Key
	scfg.Dial = func(ctx context.Context, peerID, proto string) (message.Stream, error) {
		p, ok := dir.Peer(peerID)
		if !ok || !p.Online() {
			return nil, fmt.Errorf("%w: %s", mesh.ErrPeerOffline, mesh.ShortID(peerID))
		}
		return o.dialer.DialAddr(ctx, netip.AddrPortFrom(p.Addr, p.TLSPort).String(), peerID, proto)
	}
	scfg.Deliver = func(context.Context, *message.Envelope) error {
		return errors.New("a one-shot command does not receive messages")
	}
	scfg.Logger = o.log.With("part", "message")
	return message.New(scfg)
}

// directory is a one-shot's presence: the peers the network listed.
type directory struct {
	mu    sync.Mutex // guards peers
	peers map[string]mesh.Peer
}

func (d *directory) set(ps []mesh.Peer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range ps {
		d.peers[p.ID] = p
	}
}

func (d *directory) Peers() []mesh.Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]mesh.Peer, 0, len(d.peers))
	for _, p := range d.peers {
		out = append(out, p)
	}
	return out
}

func (d *directory) Peer(id string) (mesh.Peer, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.peers[id]
	return p, ok
}

// findRecipient discovers until the network lists whom to names (or the
// search ends), tells svc of everyone found, and resolves to as svc does,
// through trust: what a one-shot send and send-file share. Its error is
// the API's.
func (o *OneShot) findRecipient(ctx context.Context, to string, dir *directory, svc *chat.Service) (mesh.Peer, error) {
	found := func(ps []mesh.Peer) bool {
		_, err := chat.Resolve(to, ps)
		var re *chat.RecipientError
		return !errors.As(err, &re) || errors.Is(err, chat.ErrAmbiguousRecipient)
	}
	peers, derr := o.Discover(ctx, found)
	dir.set(peers)
	for _, p := range peers {
		svc.Saw(p)
	}
	p, err := svc.Resolve(to)
	if err != nil {
		if derr != nil {
			err = fmt.Errorf("%w (and discovery: %v)", err, derr)
		}
		return mesh.Peer{}, apiError(err)
	}
	return p, nil
}
