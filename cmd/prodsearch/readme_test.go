package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMECommandsParse reads every `prodsearch ...` / `bin/prodsearch ...`
// line of README.md's code blocks and checks it against the command it
// names, as the CLI would parse it, without running anything: the command
// (and `index` subcommand) exists, every flag exists and has its value,
// values parse (the real flag set sees the line with -h after its flags),
// and positional arguments stand where the command takes them (after the
// flags: Go's flag package stops at the first one). `...` stands for
// "more of the same" and ends the check of a line.
func TestREADMECommandsParse(t *testing.T) {
	lines, err := readmeCommands("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 5 {
		t.Fatalf("found only %d prodsearch command lines in README.md; is the extraction broken?", len(lines))
	}
	t.Logf("checking %d prodsearch command lines of README.md", len(lines))
	for _, l := range lines {
		if err := checkCommandLine(l.args); err != nil {
			t.Errorf("README.md:%d: %s\n\t%s\n\t(fix the README line or the command; run `prodsearch %s -h` for its flags)",
				l.line, err, l.text, strings.Join(l.args[:min(1, len(l.args))], " "))
		}
	}
}

// TestCheckCommandLine shows that the checker catches the drifts it is for.
func TestCheckCommandLine(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" = valid
	}{
		{[]string{"leaderboard"}, ""},
		{[]string{"models", "mnv1"}, ""},
		{[]string{"submit", "mnv1/best", "--queries", "q.tsv", "--references", "r.tsv"}, ""},
		{[]string{"ensemble", "--out", "e.json", "a", "b"}, ""},
		{[]string{"index", "add", "--store", "s", "--ids", "path", "refs.tsv"}, ""},
		{[]string{"index", "remove", "--store", "s", "a", "b"}, ""},
		{[]string{"infer", "--bundle", "b", "--queries", "...", "--references", "..."}, ""},
		{[]string{"nosuch"}, "unknown command"},
		{[]string{"index", "frobnicate", "--store", "s"}, "unknown"},
		{[]string{"infer", "--querys", "q.tsv"}, "flag --querys"},
		{[]string{"infer", "--top"}, "needs a value"},
		{[]string{"infer", "--top", "many"}, "invalid value"},
		{[]string{"infer", "q.tsv", "--queries", "x"}, "positional"},
		{[]string{"ensemble", "a", "--out", "e.json"}, "--out comes after the positional argument"},
		{[]string{"leaderboard", "extra"}, "takes no positional"},
	} {
		err := checkCommandLine(c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}

type readmeLine struct {
	line int
	text string
	args []string // after the program name
}

var readmeProgram = regexp.MustCompile(`^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\./)?(?:bin/)?prodsearch\s+(.*)$`)

// readmeCommands extracts the prodsearch command lines of the fenced code
// blocks, joining lines continued with a backslash and dropping comments and
// what follows a shell operator.
func readmeCommands(path string) ([]readmeLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []readmeLine
	sc := bufio.NewScanner(f)
	inBlock, n := false, 0
	var pending *readmeLine
	for sc.Scan() {
		n++
		text := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(text), "```") {
			inBlock, pending = !inBlock, nil
			continue
		}
		if !inBlock {
			continue
		}
		if pending != nil {
			pending.text += "\n" + text
		} else if m := readmeProgram.FindStringSubmatch(strings.TrimSpace(text)); m != nil {
			pending = &readmeLine{line: n, text: text}
		} else {
			continue
		}
		if strings.HasSuffix(strings.TrimSpace(text), `\`) {
			continue
		}
		joined := strings.ReplaceAll(pending.text, "\\\n", " ")
		m := readmeProgram.FindStringSubmatch(strings.TrimSpace(joined))
		args, err := shellWords(m[1])
		if err != nil {
			return nil, fmt.Errorf("README.md:%d: %w", pending.line, err)
		}
		pending.args = args
		out = append(out, *pending)
		pending = nil
	}
	return out, sc.Err()
}

// shellWords splits a command line the way sh would for these examples:
// quotes group, `#` starts a comment, and |, >, <, ;, & end the command.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unbalanced %c in %q", c, s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			inWord, i = true, i+1+j
		case c == ' ' || c == '\t':
			flush()
		case (c == '#' && !inWord) || strings.IndexByte("|><;&", c) >= 0:
			flush()
			return words, nil
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}

// cmdHelp is what a command's -h says: its synopsis and flags (name ->
// takes a value).
type cmdHelp struct {
	synopsis []string
	flags    map[string]bool
}

var (
	usageLine   = regexp.MustCompile(`(?m)^usage: prodsearch (.*)$`)
	defaultLine = regexp.MustCompile(`(?m)^  -(\S+)( \S+)?`)
)

// help runs `prodsearch path... -h` and reads its usage.
func help(path []string) (cmdHelp, error) {
	var out, errb bytes.Buffer
	err := dispatch(context.Background(), append(append([]string{}, path...), "-h"), &out, &errb)
	text := out.String() + errb.String()
	m := usageLine.FindStringSubmatch(text)
	if m == nil {
		if err == nil {
			err = fmt.Errorf("no usage line")
		}
		return cmdHelp{}, fmt.Errorf("prodsearch %s -h: %v", strings.Join(path, " "), err)
	}
	if err != nil && strings.Contains(err.Error(), "unknown") {
		return cmdHelp{}, err
	}
	// The usage line names the command path with placeholders (submit
	// RUN/CHECKPOINT ...): the synopsis is what follows those words.
	words := strings.Fields(m[1])
	h := cmdHelp{synopsis: words[min(len(path), len(words)):], flags: map[string]bool{}}
	for _, d := range defaultLine.FindAllStringSubmatch(text, -1) {
		h.flags[d[1]] = d[2] != ""
	}
	return h, nil
}

// placeholders splits a synopsis into the positional placeholders that come
// before its first flag (required words such as RUN/CHECKPOINT or
// <command>) and whether any come after the flags.
func (h cmdHelp) placeholders() (lead []string, trailing bool) {
	seenFlag := false
	for i := 0; i < len(h.synopsis); i++ {
		w := strings.Trim(h.synopsis[i], "[]()")
		switch {
		case w == "" || w == "|" || w == "flags" || w == "...":
		case strings.HasPrefix(w, "-"):
			seenFlag = true
			name, _, hasEq := strings.Cut(strings.TrimLeft(w, "-"), "=")
			if h.flags[name] && !hasEq && !strings.HasSuffix(h.synopsis[i], "]") {
				i++ // its value
			}
		case !seenFlag && !strings.HasPrefix(h.synopsis[i], "["):
			lead = append(lead, w)
		default:
			trailing = true
		}
	}
	return lead, trailing
}

// checkCommandLine checks one command line (without the program name).
func checkCommandLine(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command after prodsearch")
	}
	if _, ok := commands()[args[0]]; !ok {
		return fmt.Errorf("unknown command %q", args[0])
	}
	path := args[:1]
	h, err := help(path)
	if err != nil {
		return err
	}
	// Required leading words (index's subcommand, submit's checkpoint).
	lead, _ := h.placeholders()
	rest := args[1:]
	for range lead {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return fmt.Errorf("%s needs %s first", args[0], strings.Join(lead, " "))
		}
		path, rest = append(path, rest[0]), rest[1:]
	}
	if len(path) > 1 {
		if h, err = help(path); err != nil {
			return err
		}
	}
	_, trailing := h.placeholders()
	var flagArgs []string
	positional := ""
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "..." {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			if positional == "" {
				positional = a
			}
			if !trailing {
				return fmt.Errorf("%s takes no positional argument, got %q", strings.Join(path, " "), a)
			}
			continue
		}
		name, _, hasEq := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := h.flags[name]
		if !ok {
			return fmt.Errorf("flag --%s is not defined on %s", name, strings.Join(path, " "))
		}
		if positional != "" {
			return fmt.Errorf("flag --%s comes after the positional argument %q, so the flag package does not parse it: put flags first", name, positional)
		}
		flagArgs = append(flagArgs, a)
		if takesValue && !hasEq {
			if i+1 == len(rest) {
				return fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			if rest[i] == "..." { // a placeholder value
				flagArgs = append(flagArgs, "0")
				continue
			}
			flagArgs = append(flagArgs, rest[i])
		}
	}
	// The real flag set parses the flags, then stops at -h: values are
	// checked by their own parsers and nothing runs.
	probe := append(append(append([]string{}, args[:len(args)-len(rest)]...), flagArgs...), "-h")
	var out, errb bytes.Buffer
	if err := dispatch(context.Background(), probe, &out, &errb); err != nil {
		if m := regexp.MustCompile(`(?m)^(invalid value .*|flag needs an argument.*)$`).FindString(errb.String()); m != "" {
			return fmt.Errorf("%s", m)
		}
		return fmt.Errorf("prodsearch %s: %v", strings.Join(probe, " "), err)
	}
	return nil
}
