package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"lanchat/discovery"
	"lanchat/mesh"
	"lanchat/message"
	"lanchat/message/store"
)

// OneShot is what a command uses when no node runs on its data directory:
// it finds peers by mDNS and --join, asks them over TLS who is on the
// network (the directory stream), and talks to one directly. It never
// joins the gossip, so others do not see it come and go.
type OneShot struct {
	cfg    Config
	id     *mesh.Identity
	dialer *mesh.Dialer
	log    *slog.Logger

	// Wait bounds discovery.
	Wait time.Duration
}

// NewOneShot loads (or creates) the data directory's identity.
func NewOneShot(cfg Config) (*OneShot, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := mesh.ValidName(cfg.Name); err != nil {
		return nil, fmt.Errorf("--name: %w", err)
	}
	if err := checkDataDir(cfg.DataDir); err != nil {
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
	return &OneShot{cfg: cfg, id: id, dialer: d, log: cfg.Logger, Wait: 3 * time.Second}, nil
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
	for _, j := range o.cfg.Join {
		host, port, err := net.SplitHostPort(j)
		if err != nil {
			return nil, fmt.Errorf("--join %q: %w", j, err)
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
					if c.Proto != mesh.ProtocolVersion || c.Network != "" {
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

func sortPeers(list []mesh.Peer) []mesh.Peer {
	m := map[string]mesh.Peer{}
	for _, p := range list {
		m[p.ID] = p
	}
	// reuse mesh's ordering: by name, then id
	out := make([]mesh.Peer, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sortByName(out)
	return out
}

// Send finds to on the network (or among the contacts of earlier runs),
// stores the message in the data directory's outbox, and delivers the
// recipient's whole outbox, oldest first, if the recipient is online. If
// not, the message stays queued for the next node run on this data
// directory; with wait, Send keeps looking for the recipient until ctx
// ends.
func (o *OneShot) Send(ctx context.Context, to, text string, wait bool) (SendResult, error) {
	if err := CheckText(text); err != nil {
		return SendResult{}, err
	}
	off, err := OpenOffline(o.cfg.DataDir, o.cfg.Name, o.cfg.Sync, o.log)
	if err != nil {
		return SendResult{}, err
	}
	defer off.Close()
	found := func(ps []mesh.Peer) bool {
		_, err := Resolve(to, ps)
		var re *RecipientError
		return !errors.As(err, &re) || errors.Is(err, ErrAmbiguousRecipient)
	}
	peers, derr := o.Discover(ctx, found)
	for _, p := range peers {
		off.contacts.saw(p.ID, p.Name)
	}
	known := append([]mesh.Peer(nil), peers...)
	seen := map[string]bool{}
	for _, p := range peers {
		seen[p.ID] = true
	}
	for _, c := range off.contacts.list() {
		if !seen[c.ID] {
			known = append(known, mesh.Peer{ID: c.ID, Name: c.Name, State: mesh.Offline, LastSeen: c.LastSeen})
		}
	}
	p, err := Resolve(to, known)
	if err != nil {
		if derr != nil {
			return SendResult{}, fmt.Errorf("%w (and discovery: %v)", err, derr)
		}
		return SendResult{}, err
	}
	if p.ID == o.id.ID {
		return SendResult{}, fmt.Errorf("%w: that is you", ErrInvalidText)
	}
	ref := PeerRef{ID: p.ID, Name: p.Name}
	env, err := off.chat.queue(ctx, p.ID, message.KindText, text)
	if err != nil {
		return SendResult{To: ref}, err
	}
	res := SendResult{ID: env.ID, To: ref, State: store.Queued.String()}
	for {
		if p.Online() {
			if err := o.flushTo(ctx, off, p); err != nil {
				o.log.Info("delivery failed; the message stays queued", "peer", mesh.ShortID(p.ID), "err", err)
			}
			if rec, err := off.chat.st.Get(context.Background(), o.id.ID, env.ID); err == nil {
				res.State = rec.State.String()
			}
		}
		if res.State == store.Delivered.String() || !wait || ctx.Err() != nil {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, nil
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
			if q.ID == p.ID {
				p = q
			}
		}
	}
}

// flushTo sends every message waiting for p, oldest first, on one stream.
func (o *OneShot) flushTo(ctx context.Context, off *Offline, p mesh.Peer) error {
	addr := netip.AddrPortFrom(p.Addr, p.TLSPort).String()
	scfg := message.DefaultConfig()
	scfg.Self = o.id.ID
	scfg.Name = func() string { return o.cfg.Name }
	scfg.Key = o.id.Key
	scfg.Dial = func(ctx context.Context, peerID, proto string) (message.Stream, error) {
		if peerID != p.ID {
			return nil, fmt.Errorf("%w: %s", mesh.ErrUnknownPeer, mesh.ShortID(peerID))
		}
		return o.dialer.DialAddr(ctx, addr, peerID, proto)
	}
	scfg.Deliver = func(context.Context, *message.Envelope) error {
		return errors.New("a one-shot command does not receive messages")
	}
	scfg.Logger = o.log.With("part", "message")
	svc := message.New(scfg)
	defer svc.Close()
	for {
		recs, err := off.chat.st.Outbox(ctx, p.ID, chunkSize)
		if err != nil || len(recs) == 0 {
			return err
		}
		q := make([]message.Queued, len(recs))
		for i, r := range recs {
			q[i] = message.Queued{ID: r.ID, Sealed: r.Sealed}
		}
		// One chunk at a time, oldest first; a one-shot sends little.
		errs := svc.SendBatch(ctx, p.ID, q, func(bool) {})
		for i, r := range recs {
			if errs[i] == nil {
				_, errs[i] = off.chat.st.SetState(ctx, r.ID, store.Delivered)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
}
