#!/usr/bin/env bash
# Regenerates the TLS material of tests/tls/ (test use only, never for a real
# server): a CA, a server certificate for 127.0.0.1 and localhost, and a
# client certificate whose key is encrypted (PKCS#8, AES-256-CBC) with the
# password in tests/tls/client-key-password.txt.
set -euo pipefail
cd "$(dirname "$0")/../tests/tls"
days=36500
password=$(cat client-key-password.txt)
ext=$(mktemp)
trap 'rm -f "$ext" ./*.csr ./*.srl ca.key client.key' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days "$days" -subj "/CN=edn-migrate test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout server.key -out server.csr -subj "/CN=localhost"
printf 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$ext"
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days "$days" -extfile "$ext"

openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout client.key -out client.csr -subj "/CN=edn-migrate test client"
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$ext"
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out client-cert.pem -days "$days" -extfile "$ext"
openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in client.key \
  -passout "pass:$password" -out client-key.pem
# The driver reads the certificate and the encrypted key from one file.
cat client-cert.pem client-key.pem >client.pem
rm -f client-cert.pem client-key.pem
