package api

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"
)

// Files is the file-transfer part of the API. It stands beside API rather
// than in it, so a front end (or a test's fake) that moves no files need
// not implement it; the node and Client do. A handler whose
// implementation lacks it answers its routes with CodeFailed.
type Files interface {
	// OfferFiles offers files and folders to a peer and sends them in
	// the background once accepted, resuming after cuts, until the
	// recipient has verified everything or says no. It returns at once.
	OfferFiles(ctx context.Context, req FileOfferRequest) (Transfer, error)
	// Transfers lists offers and transfers both ways, oldest first.
	Transfers(ctx context.Context) ([]Transfer, error)
	// AcceptTransfer and DeclineTransfer answer an offer that waits for
	// a decision (state "offered").
	AcceptTransfer(ctx context.Context, req TransferRequest) (Transfer, error)
	DeclineTransfer(ctx context.Context, req TransferRequest) (Transfer, error)
}

// FileOfferRequest is the body of POST /v1/files.
type FileOfferRequest struct {
	// To is a name, a whole id, or an id prefix of at least 4 characters.
	To string `json:"to"`
	// Paths are absolute paths of files or folders on the node's machine
	// (the node reads them as the user it runs as): 1 to MaxOfferPaths.
	Paths []string `json:"paths"`
}

// TransferRequest is the body of POST /v1/transfers/accept and
// /v1/transfers/decline.
type TransferRequest struct {
	ID string `json:"id"`
}

// MaxOfferPaths bounds the paths of one offer.
const MaxOfferPaths = 1000

// Transfer states, as Transfer.State has them.
const (
	TransferOffered  = "offered"  // incoming, waiting for accept or decline
	TransferWaiting  = "waiting"  // outgoing, the recipient is away, deciding, or the stream was cut
	TransferActive   = "active"   // data is moving
	TransferDone     = "done"     // every file verified and in place
	TransferDeclined = "declined" // the recipient said no
	TransferFailed   = "failed"   // ended for good; error says why
)

// Transfer is one offer or transfer.
type Transfer struct {
	ID        string   `json:"id"`        // the same on both sides
	Direction string   `json:"direction"` // "in" or "out"
	Peer      PeerRef  `json:"peer"`
	Names     []string `json:"names"` // the top-level names offered
	Files     int      `json:"files"`
	Total     int64    `json:"total"`             // bytes
	Done      int64    `json:"done"`              // bytes verified (in), or sent or already held (out)
	FilesDone int      `json:"files_done"`        // files finished (in: verified and in place)
	Current   string   `json:"current,omitempty"` // the file being moved, while active
	// CurrentDone and CurrentSize: the current file's bytes done and its
	// size, for a progress bar of the file beside the offer's.
	CurrentDone int64     `json:"current_done,omitempty"`
	CurrentSize int64     `json:"current_size,omitempty"`
	State       string    `json:"state"`
	Error       string    `json:"error,omitempty"`
	Skipped     []string  `json:"skipped,omitempty"` // outgoing: links and special files not sent
	Sent        int64     `json:"sent,omitempty"`    // outgoing: file bytes written to the recipient by this node run, every attempt, resent included
	Updated     time.Time `json:"updated"`
}

// Event types of file transfers.
const (
	// TypeFileOffer: a peer offers files; accept or decline it by id.
	TypeFileOffer = "file-offer"
	// TypeTransfer: a transfer changed (state or progress; progress at
	// most ten times a second a transfer).
	TypeTransfer = "transfer"
)

// FileOffer is an offer made to this node that waits for a decision.
type FileOffer struct {
	Type  string   `json:"type"` // "file-offer"
	Seq   uint64   `json:"seq"`
	ID    string   `json:"id"`
	From  PeerRef  `json:"from"`
	Names []string `json:"names"`
	Files int      `json:"files"`
	Total int64    `json:"total"`
}

// TransferChange carries a transfer as it is now.
type TransferChange struct {
	Type     string   `json:"type"` // "transfer"
	Seq      uint64   `json:"seq"`
	Transfer Transfer `json:"transfer"`
}

func (e FileOffer) EventType() string             { return TypeFileOffer }
func (e FileOffer) EventSeq() uint64              { return e.Seq }
func (e FileOffer) WithSeq(seq uint64) Event      { e.Seq = seq; return e }
func (e TransferChange) EventType() string        { return TypeTransfer }
func (e TransferChange) EventSeq() uint64         { return e.Seq }
func (e TransferChange) WithSeq(seq uint64) Event { e.Seq = seq; return e }

const maxFilesBody = 1 << 20 // an offer's paths: MaxOfferPaths of up to 1 KiB each

func (s *server) files() (Files, error) {
	f, ok := s.impl.(Files)
	if !ok {
		return nil, Errorf(CodeFailed, "this node does not move files")
	}
	return f, nil
}

func (s *server) offerFiles(w http.ResponseWriter, r *http.Request) error {
	f, err := s.files()
	if err != nil {
		return err
	}
	var req FileOfferRequest
	if err := s.decodeBody(w, r, maxFilesBody, &req); err != nil {
		return err
	}
	if req.To == "" || len(req.Paths) == 0 || len(req.Paths) > MaxOfferPaths {
		return Errorf(CodeInvalid, fmt.Sprintf("an offer needs a recipient and 1 to %d paths", MaxOfferPaths))
	}
	for _, p := range req.Paths {
		if !filepath.IsAbs(p) {
			return Errorf(CodeInvalid, fmt.Sprintf("path %q is not absolute", p))
		}
	}
	v, err := f.OfferFiles(r.Context(), req)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *server) transfers(w http.ResponseWriter, r *http.Request) error {
	f, err := s.files()
	if err != nil {
		return err
	}
	v, err := f.Transfers(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, orEmpty(v))
	return nil
}

func settleTransfer(accept bool) func(*server, http.ResponseWriter, *http.Request) error {
	return func(s *server, w http.ResponseWriter, r *http.Request) error {
		f, err := s.files()
		if err != nil {
			return err
		}
		var req TransferRequest
		if err := s.decodeBody(w, r, maxRoomBody, &req); err != nil {
			return err
		}
		if req.ID == "" {
			return Errorf(CodeInvalid, "no transfer id")
		}
		var v Transfer
		if accept {
			v, err = f.AcceptTransfer(r.Context(), req)
		} else {
			v, err = f.DeclineTransfer(r.Context(), req)
		}
		if err != nil {
			return err
		}
		s.writeJSON(w, r, http.StatusOK, v)
		return nil
	}
}

// OfferFiles implements Files.
func (c *Client) OfferFiles(ctx context.Context, req FileOfferRequest) (Transfer, error) {
	var v Transfer
	err := c.call(ctx, "POST", "/v1/files", nil, req, maxSmallReply, &v)
	return v, err
}

// Transfers implements Files.
func (c *Client) Transfers(ctx context.Context) ([]Transfer, error) {
	var v []Transfer
	err := c.call(ctx, "GET", "/v1/transfers", nil, nil, maxListReply, &v)
	return v, err
}

// AcceptTransfer implements Files.
func (c *Client) AcceptTransfer(ctx context.Context, req TransferRequest) (Transfer, error) {
	var v Transfer
	err := c.call(ctx, "POST", "/v1/transfers/accept", nil, req, maxSmallReply, &v)
	return v, err
}

// DeclineTransfer implements Files.
func (c *Client) DeclineTransfer(ctx context.Context, req TransferRequest) (Transfer, error) {
	var v Transfer
	err := c.call(ctx, "POST", "/v1/transfers/decline", nil, req, maxSmallReply, &v)
	return v, err
}

var _ Files = (*Client)(nil)
