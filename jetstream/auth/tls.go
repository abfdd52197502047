package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLS file names WriteTLS puts in its directory.
const (
	CAFile      = "ca.pem"         // the CA clients verify the server with (--tls-ca)
	CertFile    = "server.pem"     // the server's certificate, signed by the CA
	KeyFile     = "server-key.pem" // its key (owner-readable only)
	caKeyFile   = "ca-key.pem"
	certMaxLife = 5 * 365 * 24 * time.Hour
)

// WriteTLS makes, in dir, a private CA and a server certificate it signs
// for hosts (names and IP addresses; localhost, 127.0.0.1 and ::1 are
// always in), unless they are there already. It returns the CA, the
// certificate and the key files. For a single machine or a test bed: a
// deployment with its own PKI passes its files to nats-server instead.
func WriteTLS(dir string, hosts ...string) (ca, cert, key string, err error) {
	ca, cert, key = filepath.Join(dir, CAFile), filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if exists(ca) && exists(cert) && exists(key) {
		return ca, cert, key, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", "", fmt.Errorf("auth: %w", err)
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", fmt.Errorf("auth: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "baton CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certMaxLife),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", fmt.Errorf("auth: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", "", fmt.Errorf("auth: CA certificate: %w", err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", fmt.Errorf("auth: server key: %w", err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "baton nats-server"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certMaxLife),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			srvTmpl.IPAddresses = append(srvTmpl.IPAddresses, ip)
		} else if h != "" {
			srvTmpl.DNSNames = append(srvTmpl.DNSNames, h)
		}
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", fmt.Errorf("auth: server certificate: %w", err)
	}
	for _, f := range []struct {
		path, kind string
		der        []byte
		key        *ecdsa.PrivateKey
		mode       os.FileMode
	}{
		{ca, "CERTIFICATE", caDER, nil, 0o644},
		{filepath.Join(dir, caKeyFile), "EC PRIVATE KEY", nil, caKey, 0o600},
		{cert, "CERTIFICATE", srvDER, nil, 0o644},
		{key, "EC PRIVATE KEY", nil, srvKey, 0o600},
	} {
		der := f.der
		if f.key != nil {
			if der, err = x509.MarshalECPrivateKey(f.key); err != nil {
				return "", "", "", fmt.Errorf("auth: %w", err)
			}
		}
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: der}), f.mode); err != nil {
			return "", "", "", fmt.Errorf("auth: %w", err)
		}
	}
	return ca, cert, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
