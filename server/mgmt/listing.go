package mgmt

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Listing parameters, as rabbit_mgmt_util's: a list endpoint answers a plain JSON array, or
// with page=N one page of it in an envelope; name (with use_regex=true a regular expression)
// filters a paged list by name; sort and sort_reverse order it; columns keeps only the named
// fields of each object.

const (
	defaultPageSize = 100 // RabbitMQ's DEFAULT_PAGE_SIZE
	maxPageSize     = 500 // RabbitMQ's MAX_PAGE_SIZE
)

// listQuery is a list endpoint's query parameters.
type listQuery struct {
	paged          bool // page was given
	page, pageSize int
	name           string
	regex          *regexp.Regexp // name as a case-insensitive regular expression (use_regex=true)
	sortSet        bool           // sort was given; "" then means unsorted
	sortKey        []string       // the sort field's dotted path
	reverse        bool
	columns        [][]string // dotted paths; nil keeps every field
}

// listError is a bad query parameter: RabbitMQ's status, error and reason.
type listError struct {
	status       int
	kind, reason string
}

func (e *listError) Error() string { return e.kind + ": " + e.reason }

var errBadPagination = &listError{http.StatusBadRequest, "bad_request", "Pagination parameters are invalid"}

// parseListQuery reads the listing parameters of q (rabbit_mgmt_util pagination_params,
// sort_list, columns).
func parseListQuery(q url.Values) (listQuery, *listError) {
	var lq listQuery
	var pageSizeSet bool
	lq.pageSize = defaultPageSize
	if s, ok := first(q, "page"); ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			return lq, errBadPagination
		}
		lq.paged, lq.page = true, n
	}
	if s, ok := first(q, "page_size"); ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			return lq, errBadPagination
		}
		lq.pageSize, pageSizeSet = n, true
	}
	if lq.paged && (lq.page < 1 || lq.pageSize < 1 || lq.pageSize > maxPageSize) {
		size := "undefined"
		if pageSizeSet {
			size = strconv.Itoa(lq.pageSize)
		}
		return lq, &listError{http.StatusBadRequest, "invalid_pagination_parameters",
			fmt.Sprintf("Invalid pagination parameters: page number %d, page size %s", lq.page, size)}
	}
	lq.name, _ = first(q, "name")
	if s, _ := first(q, "use_regex"); s == "true" && lq.name != "" {
		re, err := regexp.Compile("(?i)" + lq.name)
		if err != nil {
			return lq, errBadPagination
		}
		lq.regex = re
	}
	if s, ok := first(q, "sort"); ok {
		lq.sortSet = true
		if s != "" {
			lq.sortKey = strings.Split(s, ".")
		}
	}
	switch s, _ := first(q, "sort_reverse"); s {
	case "", "false":
	case "true":
		lq.reverse = true
	default:
		// RabbitMQ answers 500 (no clause matches); a client error is a 400.
		return lq, &listError{http.StatusBadRequest, "bad_request", "sort_reverse must be true or false"}
	}
	if s, ok := first(q, "columns"); ok && s != "" {
		for c := range strings.SplitSeq(s, ",") {
			lq.columns = append(lq.columns, strings.Split(c, "."))
		}
	}
	return lq, nil
}

func first(q url.Values, k string) (string, bool) {
	v, ok := q[k]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// replyList answers a list endpoint: items sorted by the query's sort field then by
// defaultSort (dotted paths), reversed on sort_reverse, and with paginate and page=N, filtered
// by name and cut to one page in RabbitMQ's envelope; columns trims every object. Endpoints
// that RabbitMQ does not paginate (bindings, consumers, policies, ...) pass paginate false:
// page is then ignored, as by RabbitMQ. Bad parameters get RabbitMQ's 400 answers.
func (a *api) replyList(w http.ResponseWriter, r *http.Request, items []map[string]any, paginate bool, defaultSort ...string) {
	out, lerr := listing(r.URL.Query(), items, paginate, defaultSort)
	if lerr != nil {
		a.log.Debug().Str("query", r.URL.RawQuery).Str("path", r.URL.Path).Str("error", lerr.reason).Msg("bad listing parameters")
		writeError(w, lerr.status, lerr.kind, lerr.reason)
		return
	}
	writeJSON(w, out)
}

// replyObject answers one object, trimmed to the query's columns (RabbitMQ applies columns to
// single objects too).
func replyObject(w http.ResponseWriter, r *http.Request, obj map[string]any) {
	lq, lerr := parseListQuery(r.URL.Query())
	if lerr == nil && lq.columns != nil {
		obj = pickColumns(obj, lq.columns)
	}
	writeJSON(w, obj)
}

// listing is replyList's answer: a []map[string]any or a page envelope.
func listing(q url.Values, items []map[string]any, paginate bool, defaultSort []string) (any, *listError) {
	lq, lerr := parseListQuery(q)
	if lerr != nil {
		return nil, lerr
	}
	if items == nil {
		items = []map[string]any{}
	}
	sortItems(items, lq, defaultSort)
	if !paginate || !lq.paged {
		return trim(items, lq.columns), nil
	}
	total := len(items)
	if lq.name != "" {
		kept := items[:0:0]
		for _, it := range items {
			if nameMatches(it, lq) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	offset := (lq.page - 1) * lq.pageSize
	if offset > len(items) {
		return nil, &listError{http.StatusBadRequest, "page_out_of_range",
			fmt.Sprintf("Page out of range, page: %d page size: %d, len: %d", lq.page, lq.pageSize, len(items))}
	}
	pageItems := items[offset:min(offset+lq.pageSize, len(items))]
	return map[string]any{
		"filtered_count": len(items),
		"item_count":     len(pageItems),
		"items":          trim(pageItems, lq.columns),
		"page":           lq.page,
		"page_count":     (len(items) + lq.pageSize - 1) / lq.pageSize,
		"page_size":      lq.pageSize,
		"total_count":    total,
	}, nil
}

// nameMatches applies the name filter: a case-insensitive substring, or the regex.
func nameMatches(it map[string]any, lq listQuery) bool {
	name, _ := it["name"].(string)
	if lq.regex != nil {
		return lq.regex.MatchString(name)
	}
	return strings.Contains(strings.ToLower(name), strings.ToLower(lq.name))
}

// sortItems orders items as rabbit_mgmt_util sort_list: by the sort field, then the default
// keys, in Erlang's term order; sort= (empty) leaves the order alone. sort_reverse reverses.
func sortItems(items []map[string]any, lq listQuery, defaultSort []string) {
	var keys [][]string
	switch {
	case lq.sortSet && lq.sortKey == nil:
	case lq.sortSet:
		keys = append(keys, lq.sortKey)
		fallthrough
	default:
		for _, k := range defaultSort {
			keys = append(keys, strings.Split(k, "."))
		}
	}
	if len(keys) > 0 {
		slices.SortStableFunc(items, func(x, y map[string]any) int {
			for _, k := range keys {
				if c := compareTerms(dotted(x, k), dotted(y, k)); c != 0 {
					return c
				}
			}
			return 0
		})
	}
	if lq.reverse {
		slices.Reverse(items)
	}
}

// dotted is the value at a dotted path; missing is 0, as RabbitMQ sorts it.
func dotted(m map[string]any, path []string) any {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		if v, ok = mm[k]; !ok {
			return 0
		}
	}
	return v
}

// termRank orders JSON values by kind as Erlang orders the terms they are made of: numbers,
// atoms (false, null, true), maps, lists, binaries (strings).
func termRank(v any) int {
	switch v.(type) {
	case int, int64, uint64, float64, int32, uint32, uint16, uint8, int16, int8:
		return 0
	case bool, nil:
		return 1
	case map[string]any:
		return 2
	case []any, []map[string]any, []string:
		return 3
	case string:
		return 4
	}
	return 5
}

func compareTerms(x, y any) int {
	rx, ry := termRank(x), termRank(y)
	if rx != ry {
		return cmp.Compare(rx, ry)
	}
	switch rx {
	case 0:
		return cmp.Compare(toFloat(x), toFloat(y))
	case 1:
		return strings.Compare(atomName(x), atomName(y))
	case 4:
		return strings.Compare(x.(string), y.(string))
	}
	return 0
}

func atomName(v any) string {
	if b, ok := v.(bool); ok {
		return strconv.FormatBool(b)
	}
	return "null"
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case uint64:
		return float64(n)
	case float64:
		return n
	case int32:
		return float64(n)
	case uint32:
		return float64(n)
	case uint16:
		return float64(n)
	case uint8:
		return float64(n)
	case int16:
		return float64(n)
	case int8:
		return float64(n)
	}
	return 0
}

// trim applies columns to each item (nil columns: the items themselves).
func trim(items []map[string]any, columns [][]string) []map[string]any {
	if columns == nil {
		return items
	}
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i] = pickColumns(it, columns)
	}
	return out
}

// pickColumns keeps the fields of m the dotted paths name, nested objects kept as far as the
// path goes (rabbit_mgmt_util filter_columns): "message_stats.publish" keeps
// {"message_stats": {"publish": N}}. Paths to missing fields are left out.
func pickColumns(m map[string]any, columns [][]string) map[string]any {
	out := map[string]any{}
	for _, path := range columns {
		put(out, m, path)
	}
	return out
}

func put(dst, src map[string]any, path []string) {
	v, ok := src[path[0]]
	if !ok {
		return
	}
	if len(path) == 1 {
		dst[path[0]] = v
		return
	}
	sub, ok := v.(map[string]any)
	if !ok {
		return
	}
	d, ok := dst[path[0]].(map[string]any)
	if !ok {
		d = map[string]any{}
		dst[path[0]] = d
	}
	put(d, sub, path[1:])
}
