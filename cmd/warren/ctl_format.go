package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// writeRows prints the columns cols of rows in format: "table" (aligned, with a header),
// "tsv" (tab-separated, no header, as rabbitmqctl when not on a terminal) or "json" (an array
// of objects keyed by column, in column order; a missing value is null).
func writeRows(w io.Writer, format string, cols []string, rows []map[string]any) error {
	switch format {
	case "json":
		var b bytes.Buffer
		b.WriteByte('[')
		for i, r := range rows {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('{')
			for j, col := range cols {
				if j > 0 {
					b.WriteByte(',')
				}
				v, _ := lookup(r, col)
				b.WriteString(compactJSON(col))
				b.WriteByte(':')
				b.WriteString(compactJSON(v))
			}
			b.WriteByte('}')
		}
		b.WriteByte(']')
		var out bytes.Buffer
		if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
			return fmt.Errorf("format the rows as JSON: %w", err)
		}
		out.WriteByte('\n')
		_, err := w.Write(out.Bytes())
		return err
	case "table":
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
		if err := writeTSV(tw, cols, rows); err != nil {
			return err
		}
		return tw.Flush()
	}
	return writeTSV(w, cols, rows)
}

// writeTSV writes one line per row, the cells separated by tabs (tabs and line breaks in a
// value escaped as \t, \n and \r, so that every row stays one line of len(cols) fields).
func writeTSV(w io.Writer, cols []string, rows []map[string]any) error {
	esc := strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`)
	var b strings.Builder
	for _, r := range rows {
		b.Reset()
		for j, col := range cols {
			if j > 0 {
				b.WriteByte('\t')
			}
			v, _ := lookup(r, col)
			b.WriteString(esc.Replace(cell(v)))
		}
		b.WriteByte('\n')
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

// compactJSON is v as JSON without HTML escaping ("<" stays "<").
func compactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
