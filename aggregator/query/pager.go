package query

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MaxPageBytes bounds the items of one page, in wire bytes: a page ends early
// rather than pass a client's default 4 MiB receive limit.
const MaxPageBytes = 3 << 20

// pageRequest is a List request.
type pageRequest interface {
	proto.Message
	GetPageSize() int32
	GetPageToken() string
}

// pager builds one page of a List answer, the same way for every List: at
// most the page size in items, and fewer when the next item would take the
// page past MaxPageBytes (never fewer than one). Its page tokens are bound
// to the request that made them (AIP-158): a token used with other filters
// is InvalidArgument.
type pager struct {
	size     int
	maxBytes int
	bytes    int
	n        int
	bind     string
	// after is the key of the last item of the previous page, "" on the first.
	after string
}

func newPager(req pageRequest) (*pager, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	p := &pager{size: size, maxBytes: MaxPageBytes, bind: binding(req)}
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		bind, key, ok := strings.Cut(strings.TrimPrefix(string(b), tokenPrefix), ":")
		if err != nil || !strings.HasPrefix(string(b), tokenPrefix) || !ok {
			return nil, status.Error(codes.InvalidArgument, "page_token is not one this server issued")
		}
		if bind != p.bind {
			return nil, status.Error(codes.InvalidArgument, "page_token was issued for a request with other filters; send the same filters, or no token to start again")
		}
		p.after = key
	}
	return p, nil
}

// tokenPrefix marks tokens of this format.
const tokenPrefix = "ka2:"

// binding is a digest of a request without its page fields.
func binding(req pageRequest) string {
	c := proto.Clone(req)
	m := c.ProtoReflect()
	for _, name := range []protoreflect.Name{"page_size", "page_token"} {
		if fd := m.Descriptor().Fields().ByName(name); fd != nil {
			m.Clear(fd)
		}
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	sum := sha256.Sum256(append([]byte(m.Descriptor().FullName()), b...))
	return hex.EncodeToString(sum[:8])
}

// fits reports whether an item of itemBytes may join the page, and counts
// it if so. When it may not, the page is full and its token is due.
func (p *pager) fits(itemBytes int) bool {
	if p.n >= p.size || (p.n > 0 && p.bytes+itemBytes > p.maxBytes) {
		return false
	}
	p.n++
	p.bytes += itemBytes
	return true
}

// token is the next page's token, resuming after key.
func (p *pager) token(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(tokenPrefix + p.bind + ":" + key))
}

// validEnum reports whether an enum field holds a value the API defines.
func validEnum(e protoreflect.Enum) bool {
	return e.Descriptor().Values().ByNumber(e.Number()) != nil
}

// checkEnums refuses a request whose enum filters hold undefined values:
// they would silently match nothing.
func checkEnums(fields ...protoreflect.Enum) error {
	for _, e := range fields {
		if !validEnum(e) {
			return status.Errorf(codes.InvalidArgument, "%s has no value %d", e.Descriptor().FullName(), e.Number())
		}
	}
	return nil
}
