package testimage

import (
	"bytes"
	"fmt"
	"strconv"
)

// SparseTar returns a tar archive of one PAX (GNU 1.0) sparse file called
// name whose logical size is realSize: all holes but for data at its end.
// The archive is a few KiB whatever realSize is; a tar reader reports the
// entry's Size as realSize and reads it as that many bytes. Go's tar.Writer
// cannot write sparse files, so the blocks are put together here.
func SparseTar(name string, realSize int64, data []byte) []byte {
	if int64(len(data)) > realSize {
		panic("SparseTar: data longer than the file")
	}
	var body bytes.Buffer
	// The sparse map (number of entries, then offset and length of each),
	// padded to a block, precedes the data.
	fmt.Fprintf(&body, "1\n%d\n%d\n", realSize-int64(len(data)), len(data))
	pad(&body)
	body.Write(data)
	physical := body.Len()
	pad(&body)

	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.realsize", strconv.FormatInt(realSize, 10))
	var out bytes.Buffer
	out.Write(ustarHeader("PaxHeaders.0/"+name, 'x', int64(len(pax))))
	out.WriteString(pax)
	pad(&out)
	out.Write(ustarHeader("GNUSparseFile.0/"+name, '0', int64(physical)))
	out.Write(body.Bytes())
	out.Write(make([]byte, 1024)) // end of archive
	return out.Bytes()
}

func pad(b *bytes.Buffer) {
	if r := b.Len() % 512; r != 0 {
		b.Write(make([]byte, 512-r))
	}
}

// paxRecord is "<len> key=value\n" where len counts the whole record.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		s := fmt.Sprintf("%d %s=%s\n", n, k, v)
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

func ustarHeader(name string, typ byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], fmt.Sprintf("%011o\x00", 1700000000))
	h[156] = typ
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}
