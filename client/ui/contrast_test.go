package ui

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// luminance is WCAG 2's relative luminance of an sRGB colour "#rrggbb".
func luminance(hex string) float64 {
	v, _ := strconv.ParseUint(strings.TrimPrefix(hex, "#"), 16, 32)
	ch := func(c uint64) float64 {
		s := float64(c) / 255
		if s <= 0.03928 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(v>>16&0xff) + 0.7152*ch(v>>8&0xff) + 0.0722*ch(v&0xff)
}

func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// TestContrast: in light and in dark mode, every text colour of the page
// meets WCAG AA (4.5:1) on the background it is drawn on.
func TestContrast(t *testing.T) {
	css, err := static.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile(`:root \{([^}]*)\}`).FindAllStringSubmatch(string(css), -1)
	if len(blocks) != 2 {
		t.Fatalf("%d :root blocks in style.css, want light and dark", len(blocks))
	}
	decl := regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-fA-F]{6})`)
	for i, mode := range []string{"light", "dark"} {
		vars := map[string]string{}
		for _, m := range decl.FindAllStringSubmatch(blocks[i][1], -1) {
			vars[m[1]] = m[2]
		}
		pairs := [][2]string{{"fg", "bg"}, {"muted", "bg"}, {"link", "bg"}, {"fg", "head"}, {"muted", "head"}, {"link", "head"}}
		for _, p := range []string{"sp", "hp", "ds", "dp", "ot", "crit", "warn", "info", "stale"} {
			pairs = append(pairs, [2]string{p + "-fg", p + "-bg"})
		}
		for _, p := range pairs {
			fg, bg := vars[p[0]], vars[p[1]]
			if fg == "" || bg == "" {
				t.Errorf("%s mode: --%s or --%s is not defined", mode, p[0], p[1])
				continue
			}
			if c := contrast(fg, bg); c < 4.5 {
				t.Errorf("%s mode: --%s %s on --%s %s has contrast %.2f, under 4.5", mode, p[0], fg, p[1], bg, c)
			}
		}
	}
}
