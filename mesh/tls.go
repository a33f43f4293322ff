package mesh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"lanchat/internal/netkey"
)

// ALPN names of the streams mesh itself serves. Other packages bring their
// own (message.ALPN, filexfer's) and register them with Handle.
const (
	ALPNPing      = "lanchat/ping/1" // handshake only: proves who holds the key at an address
	ALPNDirectory = "lanchat/dir/1"  // the responder's view of the network, as JSON
)

// ErrWrongPeer is returned when the certificate presented at an address
// does not belong to the peer id that was expected there.
var ErrWrongPeer = errors.New("peer presented another identity")

// handshakeTimeout bounds a TLS handshake on either side, so half-open and
// slow connections cannot hold a slot.
const handshakeTimeout = 5 * time.Second

// Stream is a mutually authenticated TLS 1.3 connection to one peer.
type Stream struct {
	*tls.Conn
	peer string
}

// PeerID is the id proven by the remote certificate's key.
func (s *Stream) PeerID() string { return s.peer }

// Protocol is the ALPN name both sides agreed on.
func (s *Stream) Protocol() string { return s.ConnectionState().NegotiatedProtocol }

// selfSignedCert wraps the identity key in a certificate. Its contents other
// than the key do not matter: peers check only the key's hash.
func selfSignedCert(id *Identity) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "lanchat " + ShortID(id.ID)},
		NotBefore:    time.Now().Add(-24 * time.Hour),
		NotAfter:     time.Now().Add(20 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.Public(), id.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Key}, nil
}

// peerIDOf returns the id proven by a handshake's certificate chain. TLS 1.3
// has already checked the CertificateVerify signature against the leaf's
// key, so owning that key is proven; only its hash is left to compute.
func peerIDOf(rawCerts [][]byte) (string, error) {
	if len(rawCerts) != 1 {
		return "", fmt.Errorf("want exactly one certificate, got %d", len(rawCerts))
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return "", fmt.Errorf("parse certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", errors.New("certificate key is not Ed25519")
	}
	return IDFromPublicKey(pub), nil
}

func serverTLSConfig(cert tls.Certificate, protos []string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   protos,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := peerIDOf(raw)
			return err
		},
	}
}

// clientTLSConfig checks the server's key against expect; an empty expect
// accepts any well-formed identity (a seed known by address only).
func clientTLSConfig(cert tls.Certificate, proto, expect string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		NextProtos:         []string{proto},
		InsecureSkipVerify: true, // replaced by the id check below: there is no CA
		ServerName:         "lanchat",
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := peerIDOf(raw)
			if err != nil {
				return err
			}
			if expect != "" && id != expect {
				return fmt.Errorf("%w: expected %s, got %s", ErrWrongPeer, ShortID(expect), ShortID(id))
			}
			return nil
		},
	}
}

// Dialer opens secure streams to addresses. It is all a one-shot command
// needs: it talks to peers without joining the gossip.
type Dialer struct {
	cert    tls.Certificate
	network netkey.Ring // the closed network's keys; empty for an open one
}

// SetNetwork makes every stream the Dialer opens prove the network's key
// (and check the other side's). Call it before the first dial.
func (d *Dialer) SetNetwork(ring netkey.Ring) { d.network = ring }

// NewDialer makes a Dialer presenting id's certificate.
func NewDialer(id *Identity) (*Dialer, error) {
	cert, err := selfSignedCert(id)
	if err != nil {
		return nil, fmt.Errorf("make certificate: %w", err)
	}
	return &Dialer{cert: cert}, nil
}

// DialAddr connects to addr and proves that the peer there holds the key of
// expect (any key when expect is ""), agreeing on proto.
func (d *Dialer) DialAddr(ctx context.Context, addr, expect, proto string) (*Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, clientTLSConfig(d.cert, proto, expect))
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	st := conn.ConnectionState()
	if st.NegotiatedProtocol != proto {
		conn.Close()
		return nil, fmt.Errorf("%s does not speak %s", addr, proto)
	}
	id, err := peerIDOf(rawCerts(st))
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := proveNetwork(conn, d.network, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return &Stream{Conn: conn, peer: id}, nil
}

func rawCerts(st tls.ConnectionState) [][]byte {
	out := make([][]byte, len(st.PeerCertificates))
	for i, c := range st.PeerCertificates {
		out[i] = c.Raw
	}
	return out
}
