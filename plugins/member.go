package plugins

import (
	"bytes"
	"encoding/json"
)

// member returns the raw value of the member called name at the top level
// of the JSON object obj (the last one if the name repeats, as decoding
// into a map keeps), or nil; isObject is false when obj is not an object.
// It finds the member without decoding the rest: obj must be valid JSON
// (json.Valid), which the scan relies on instead of checking.
func member(obj []byte, name string) (value []byte, isObject bool) {
	i := skipSpace(obj, 0)
	if i == len(obj) || obj[i] != '{' {
		return nil, false
	}
	for i = skipSpace(obj, i+1); obj[i] != '}'; i = skipSpace(obj, i) {
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		keyEnd := skipString(obj, i)
		key := obj[i:keyEnd]
		i = skipSpace(obj, skipSpace(obj, keyEnd)+1) // past the ':'
		end := skipValue(obj, i)
		if keyIs(key, name) {
			value = obj[i:end]
		}
		i = end
	}
	return value, true
}

// keyIs reports whether the JSON string key decodes to name.
func keyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key[1:len(key)-1]) == name
	}
	var k string
	return json.Unmarshal(key, &k) == nil && k == name
}

// skipSpace returns the index of the first non-space byte of b from i on.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++ // the escaped byte: \" does not end the string
		}
	}
	return i + 1
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default: // a number, true, false or null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}
