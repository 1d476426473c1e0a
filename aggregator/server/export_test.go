package server

import "crypto/x509/pkix"

type pkixName = pkix.Name
