// compose-check: loads docker-compose.yml with the Compose Specification's own loader
// (github.com/compose-spec/compose-go, what `docker compose` uses) and checks it against
// deploy/native/topology.conf, the topology the native stack (deploy/stack.sh) runs:
//
//   - the file is valid Compose;
//   - the service set is the native one (stores under their compose names, one-shot `secrets` and
//     `migrate`, our services, nginx);
//   - our services listen on the native ports and carry exactly the native CHAT__ keys, with the
//     native values up to host names (127.0.0.1:<native port> of a store becomes <compose name>:<port>);
//   - every long-running service has a healthcheck; every dependency waits on a condition
//     (service_healthy / service_completed_successfully) and the setup order is complete;
//   - stand-ins (e.g. the APNs stand-in) run their binary on the native ports with a --dir on
//     their own volume and a /healthz healthcheck on the control port; a service whose settings
//     name {<NAME>_HOST} or {<NAME>_DIR} waits for the stand-in to be healthy, and with
//     {<NAME>_DIR} mounts its volume read-only at that folder;
//   - only nginx publishes a port (8080); internal (ops, stand-in) ports never are;
//   - deploy/nginx/compose.conf proxies to the topology's api/gateway ports and listens on 8080;
//     of the stores it proxies to the object store only (infra `objectstore`, on its compose
//     port), and nginx then waits for it to be healthy.
//
// Usage: go run . [-repo DIR] [-compose FILE] [-topology FILE]; exit 1 with the list of failures.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

type infra struct {
	name, composeName string
	port, composePort int
}

type service struct {
	name, binary string
	httpPort     int // 0: none
	opsPort      int
	env          []kv // own settings, in file order
}

type kv struct{ key, value string }

// A stand-in of an outside service: runs as compose service `binary`, with a volume of that name.
type standin struct {
	name, binary      string
	port, controlPort int
}

type topology struct {
	infra    []infra
	common   []kv
	services []service
	standins []standin
	lbName   string
	lbPort   int
}

// placeholderPrefix is how topology values name a stand-in: {APNS_HOST}, {APNS_DIR}.
func (s standin) placeholderPrefix() string {
	return strings.ReplaceAll(strings.ToUpper(s.name), "-", "_")
}

// A {PLACEHOLDER} left after substitution.
var unknownPlaceholder = regexp.MustCompile(`\{[A-Z_]+\}`)

// The one store nginx proxies to (presigned attachment URLs, /chat-attachments/).
const objectStoreInfra = "objectstore"

// Names of the one-shot setup services of the compose file (not in the native topology).
const (
	secretsService = "secrets"
	migrateService = "migrate"
)

func parseTopology(path string) (*topology, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t := &topology{}
	sc := bufio.NewScanner(f)
	line := 0
	atoi := func(s string) (int, error) {
		if s == "-" {
			return 0, nil
		}
		return strconv.Atoi(s)
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.Index(text, "#"); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s", path, line, why) }
		splitKV := func(s string) (kv, error) {
			k, v, ok := strings.Cut(s, "=")
			if !ok || !strings.HasPrefix(k, "CHAT__") {
				return kv{}, bad("expected CHAT__KEY=value, got " + s)
			}
			return kv{k, v}, nil
		}
		switch fields[0] {
		case "infra":
			if len(fields) != 5 {
				return nil, bad("infra: want 4 fields")
			}
			p, err1 := atoi(fields[2])
			cp, err2 := atoi(fields[4])
			if err1 != nil || err2 != nil {
				return nil, bad("infra: bad port")
			}
			t.infra = append(t.infra, infra{fields[1], fields[3], p, cp})
		case "common":
			if len(fields) != 2 {
				return nil, bad("common: want one KEY=value")
			}
			e, err := splitKV(fields[1])
			if err != nil {
				return nil, err
			}
			t.common = append(t.common, e)
		case "service":
			if len(fields) < 5 {
				return nil, bad("service: want name binary http-port ops-port settings...")
			}
			hp, err1 := atoi(fields[3])
			op, err2 := atoi(fields[4])
			if err1 != nil || err2 != nil {
				return nil, bad("service: bad port")
			}
			s := service{name: fields[1], binary: fields[2], httpPort: hp, opsPort: op}
			for _, f := range fields[5:] {
				e, err := splitKV(f)
				if err != nil {
					return nil, err
				}
				s.env = append(s.env, e)
			}
			t.services = append(t.services, s)
		case "extra":
			// Native-only services (cluster mode, spares for scaling tests): compose runs
			// the `service` lines alone, so these are only checked for shape.
			if len(fields) < 6 || (fields[1] != "cluster" && fields[1] != "spare") {
				return nil, bad("extra: want cluster|spare name binary http-port ops-port settings...")
			}
		case "standin":
			if len(fields) != 5 {
				return nil, bad("standin: want name port control-port binary")
			}
			p, err1 := atoi(fields[2])
			cp, err2 := atoi(fields[3])
			if err1 != nil || err2 != nil || p == 0 || cp == 0 {
				return nil, bad("standin: bad port")
			}
			t.standins = append(t.standins, standin{name: fields[1], port: p, controlPort: cp, binary: fields[4]})
		case "lb":
			if len(fields) != 3 {
				return nil, bad("lb: want name port")
			}
			p, err := atoi(fields[2])
			if err != nil {
				return nil, bad("lb: bad port")
			}
			t.lbName, t.lbPort = fields[1], p
		default:
			return nil, bad("unknown line kind " + fields[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.services) == 0 || t.lbName == "" || len(t.infra) == 0 {
		return nil, fmt.Errorf("%s: incomplete topology", path)
	}
	return t, nil
}

type checker struct {
	passed int
	failed []string
}

func (c *checker) check(ok bool, format string, args ...any) bool {
	if ok {
		c.passed++
	} else {
		c.failed = append(c.failed, fmt.Sprintf(format, args...))
	}
	return ok
}

// expectedText turns a native value into what compose must say for service `svc` and key `key`,
// but for {SECRETS} (the secret files' folder, which may differ). standinDirs maps each
// stand-in's name to the --dir of its compose command.
func expectedText(t *topology, standinDirs map[string]string, svc, key, native string) string {
	v := native
	for _, in := range t.infra {
		v = strings.ReplaceAll(v, fmt.Sprintf("127.0.0.1:%d", in.port), fmt.Sprintf("%s:%d", in.composeName, in.composePort))
	}
	host := svc
	if strings.HasSuffix(key, "__LISTEN") {
		host = "0.0.0.0"
	}
	v = strings.ReplaceAll(v, "{HOST}", host)
	for _, st := range t.standins {
		v = strings.ReplaceAll(v, "{"+st.placeholderPrefix()+"_HOST}", st.binary)
		v = strings.ReplaceAll(v, "{"+st.placeholderPrefix()+"_DIR}", standinDirs[st.name])
	}
	return v
}

// expectedValue is expectedText as an anchored regexp, any folder standing for {SECRETS}.
func expectedValue(t *topology, standinDirs map[string]string, svc, key, native string) *regexp.Regexp {
	v := expectedText(t, standinDirs, svc, key, native)
	const secrets = "{SECRETS}"
	parts := strings.Split(v, secrets)
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile("^" + strings.Join(parts, "/[^ ]+") + "$")
}

func envOf(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			out[k] = ""
		} else {
			out[k] = *v
		}
	}
	return out
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func portOf(addr string) int {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return -1
	}
	p, err := strconv.Atoi(strings.TrimRight(addr[i+1:], "/"))
	if err != nil {
		return -1
	}
	return p
}

// flagValue finds `--flag value` or `--flag=value` in a command.
func flagValue(cmd []string, flag string) (string, bool) {
	for i, a := range cmd {
		if a == flag && i+1 < len(cmd) {
			return cmd[i+1], true
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// mountOf finds the volume `source` mounted in s: its target and whether it is read-only.
func mountOf(s types.ServiceConfig, source string) (target string, readOnly, ok bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == source {
			return v.Target, v.ReadOnly, true
		}
	}
	return "", false, false
}

// usesStandin: does any of these native settings name the stand-in's host or folder?
func usesStandin(st standin, settings []kv) (host, dir bool) {
	for _, e := range settings {
		host = host || strings.Contains(e.value, "{"+st.placeholderPrefix()+"_HOST}")
		dir = dir || strings.Contains(e.value, "{"+st.placeholderPrefix()+"_DIR}")
	}
	return host, dir
}

func hasHealthcheck(s types.ServiceConfig) bool {
	h := s.HealthCheck
	if h == nil || h.Disable || len(h.Test) == 0 {
		return false
	}
	return h.Test[0] != "NONE"
}

func checkDep(c *checker, p *types.Project, from, to, cond string) {
	s := p.Services[from]
	d, ok := s.DependsOn[to]
	if c.check(ok, "%s: depends_on lacks %s (condition: %s)", from, to, cond) {
		c.check(d.Condition == cond, "%s: depends_on %s has condition %q, want %q", from, to, d.Condition, cond)
	}
}

func main() {
	repo := flag.String("repo", "", "repository root (default: two folders above this program's folder)")
	composeFile := flag.String("compose", "", "compose file (default: <repo>/docker-compose.yml)")
	topoFile := flag.String("topology", "", "topology (default: <repo>/deploy/native/topology.conf)")
	flag.Parse()
	if *repo == "" {
		wd, _ := os.Getwd()
		*repo = filepath.Dir(filepath.Dir(wd))
	}
	if *composeFile == "" {
		*composeFile = filepath.Join(*repo, "docker-compose.yml")
	}
	if *topoFile == "" {
		*topoFile = filepath.Join(*repo, "deploy", "native", "topology.conf")
	}

	topo, err := parseTopology(*topoFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check: FAIL:", err)
		os.Exit(1)
	}

	// Load exactly as `docker compose` would (schema validation, interpolation, merge keys,
	// normalization, consistency checks), without the caller's environment or .env files.
	opts, err := cli.NewProjectOptions([]string{*composeFile},
		cli.WithWorkingDirectory(*repo),
		cli.WithEnv([]string{}),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(false),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check: FAIL:", err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: FAIL: %s is not a valid compose file: %v\n", *composeFile, err)
		os.Exit(1)
	}

	c := &checker{}
	c.check(true, "valid")

	// --- service set ---
	want := map[string]string{} // name -> role
	for _, in := range topo.infra {
		want[in.composeName] = "infra"
	}
	want[secretsService] = "oneshot"
	want[migrateService] = "oneshot"
	for _, st := range topo.standins {
		want[st.binary] = "standin"
	}
	for _, s := range topo.services {
		want[s.name] = "service"
	}
	want[topo.lbName] = "lb"
	for _, name := range sortedKeys(want) {
		_, ok := project.Services[name]
		c.check(ok, "service %q (%s in %s) is missing from %s", name, want[name], filepath.Base(*topoFile), filepath.Base(*composeFile))
	}
	for _, name := range sortedKeys(project.Services) {
		_, ok := want[name]
		c.check(ok, "service %q is not in the native topology (%s)", name, *topoFile)
	}

	// --- stand-ins: binary, ports, state folder on their own volume, healthcheck ---
	standinDirs := map[string]string{}
	for _, st := range topo.standins {
		s, ok := project.Services[st.binary]
		if !ok {
			continue
		}
		cmd := []string(s.Command)
		c.check(len(cmd) > 0 && cmd[0] == st.binary, "%s: command %q does not run %s", st.binary, strings.Join(cmd, " "), st.binary)
		listen, _ := flagValue(cmd, "--listen")
		c.check(portOf(listen) == st.port, "%s: --listen %q, want port %d", st.binary, listen, st.port)
		control, _ := flagValue(cmd, "--control")
		c.check(portOf(control) == st.controlPort, "%s: --control %q, want port %d", st.binary, control, st.controlPort)
		hostnames, _ := flagValue(cmd, "--hostnames")
		c.check(slices.Contains(strings.Split(hostnames, ","), st.binary),
			"%s: --hostnames %q lacks %s, the name its clients connect to", st.binary, hostnames, st.binary)
		dir, ok := flagValue(cmd, "--dir")
		if c.check(ok && strings.HasPrefix(dir, "/"), "%s: command lacks --dir <absolute folder>", st.binary) {
			standinDirs[st.name] = dir
			target, ro, mounted := mountOf(s, st.binary)
			c.check(mounted && target == dir && !ro, "%s: volume %s is not mounted read-write at its --dir %s", st.binary, st.binary, dir)
			_, declared := project.Volumes[st.binary]
			c.check(declared, "%s: volume %s is not declared under volumes:", st.binary, st.binary)
		}
		if hasHealthcheck(s) {
			test := strings.Join(s.HealthCheck.Test, " ")
			c.check(strings.Contains(test, fmt.Sprintf(":%d/healthz", st.controlPort)), "%s: healthcheck %q does not probe /healthz on control port %d", st.binary, test, st.controlPort)
		}
	}
	// Whoever names a stand-in in its settings waits for it, and reads its folder read-only.
	for _, st := range topo.standins {
		users := map[string][]kv{migrateService: topo.common}
		for _, ts := range topo.services {
			users[ts.name] = append(append([]kv{}, topo.common...), ts.env...)
		}
		for _, name := range sortedKeys(users) {
			host, dir := usesStandin(st, users[name])
			s, ok := project.Services[name]
			if !ok || !(host || dir) {
				continue
			}
			checkDep(c, project, name, st.binary, types.ServiceConditionHealthy)
			if dir && standinDirs[st.name] != "" {
				target, ro, mounted := mountOf(s, st.binary)
				c.check(mounted && target == standinDirs[st.name] && ro,
					"%s: uses {%s_DIR} but does not mount volume %s read-only at %s", name, st.placeholderPrefix(), st.binary, standinDirs[st.name])
			}
		}
	}

	// --- our services: ports and settings ---
	commonKeys := map[string]string{}
	for _, e := range topo.common {
		commonKeys[e.key] = e.value
	}
	checkEnv := func(name string, own []kv) {
		s, ok := project.Services[name]
		if !ok {
			return
		}
		env := envOf(s)
		expect := map[string]string{}
		for k, v := range commonKeys {
			expect[k] = v
		}
		for _, e := range own {
			expect[e.key] = e.value
		}
		for _, k := range sortedKeys(expect) {
			got, ok := env[k]
			if !c.check(ok, "%s: environment lacks %s (native: %s)", name, k, expect[k]) {
				continue
			}
			text := strings.ReplaceAll(expectedText(topo, standinDirs, name, k, expect[k]), "{SECRETS}", "")
			if !c.check(!unknownPlaceholder.MatchString(text),
				"%s: %s=%q has a placeholder the topology does not define", name, k, expect[k]) {
				continue
			}
			re := expectedValue(topo, standinDirs, name, k, expect[k])
			c.check(re.MatchString(got), "%s: %s=%q does not match the native %q (expected %s)", name, k, got, expect[k], re)
		}
		for _, k := range sortedKeys(env) {
			if strings.HasPrefix(k, "CHAT__") {
				_, ok := expect[k]
				c.check(ok, "%s: setting %s is not in the native topology (add it to %s or remove it)", name, k, filepath.Base(*topoFile))
			}
		}
	}
	checkEnv(migrateService, nil)
	for _, ts := range topo.services {
		s, ok := project.Services[ts.name]
		if !ok {
			continue
		}
		checkEnv(ts.name, ts.env)
		env := envOf(s)
		if ts.httpPort != 0 {
			c.check(portOf(env["CHAT__HTTP__LISTEN"]) == ts.httpPort, "%s: CHAT__HTTP__LISTEN=%q, want port %d", ts.name, env["CHAT__HTTP__LISTEN"], ts.httpPort)
		}
		c.check(portOf(env["CHAT__OPS__LISTEN"]) == ts.opsPort, "%s: CHAT__OPS__LISTEN=%q, want port %d", ts.name, env["CHAT__OPS__LISTEN"], ts.opsPort)
		cmd := strings.Join(s.Command, " ")
		c.check(strings.Contains(cmd, ts.binary), "%s: command %q does not run %s", ts.name, cmd, ts.binary)
		if hasHealthcheck(s) {
			test := strings.Join(s.HealthCheck.Test, " ")
			c.check(strings.Contains(test, fmt.Sprintf(":%d/readyz", ts.opsPort)), "%s: healthcheck %q does not probe /readyz on ops port %d", ts.name, test, ts.opsPort)
		}
		// Our services wait for the setup to finish.
		checkDep(c, project, ts.name, migrateService, types.ServiceConditionCompletedSuccessfully)
	}
	if m, ok := project.Services[migrateService]; ok {
		cmd := strings.Join(m.Command, " ")
		c.check(strings.Contains(cmd, "chat-admin") && strings.Contains(cmd, "migrate"), "%s: command %q is not `chat-admin migrate`", migrateService, cmd)
		checkDep(c, project, migrateService, secretsService, types.ServiceConditionCompletedSuccessfully)
		for _, in := range topo.infra {
			checkDep(c, project, migrateService, in.composeName, types.ServiceConditionHealthy)
		}
	}
	// nginx waits for what it proxies to.
	for _, ts := range topo.services {
		if ts.httpPort != 0 {
			checkDep(c, project, topo.lbName, ts.name, types.ServiceConditionHealthy)
		}
	}

	// --- healthchecks and conditions everywhere ---
	for _, name := range sortedKeys(project.Services) {
		s := project.Services[name]
		if want[name] != "oneshot" {
			c.check(hasHealthcheck(s), "%s: long-running service without a healthcheck", name)
		}
		for _, dep := range sortedKeys(s.DependsOn) {
			d := s.DependsOn[dep]
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if ds, ok := project.Services[dep]; ok {
					c.check(hasHealthcheck(ds), "%s: waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				c.check(want[dep] == "oneshot", "%s: waits for %s to complete, but %s is not a one-shot service", name, dep, dep)
			default:
				c.check(false, "%s: depends_on %s with condition %q; use service_healthy or service_completed_successfully", name, dep, d.Condition)
			}
		}
	}

	// --- published ports: nginx's only ---
	internal := map[int]string{}
	for _, ts := range topo.services {
		internal[ts.opsPort] = ts.name + " ops"
	}
	for _, st := range topo.standins {
		internal[st.port] = st.name + " stand-in"
		internal[st.controlPort] = st.name + " stand-in control"
	}
	for _, name := range sortedKeys(project.Services) {
		s := project.Services[name]
		for _, p := range s.Ports {
			if name != topo.lbName {
				c.check(false, "%s: publishes port %s:%d; only %s may publish a port", name, p.Published, p.Target, topo.lbName)
				continue
			}
			c.check(p.Target == uint32(topo.lbPort) && p.Published == strconv.Itoa(topo.lbPort),
				"%s: publishes %s:%d, want %d:%d", name, p.Published, p.Target, topo.lbPort, topo.lbPort)
			for _, port := range []int{int(p.Target), portOf(":" + p.Published)} {
				what, bad := internal[port]
				c.check(!bad, "%s: publishes internal port %d (%s)", name, port, what)
			}
		}
	}
	if lb, ok := project.Services[topo.lbName]; ok {
		c.check(len(lb.Ports) > 0, "%s: publishes no port, want %d:%d", topo.lbName, topo.lbPort, topo.lbPort)
	}

	// --- deploy/nginx/compose.conf agrees with the topology ---
	confPath := filepath.Join(*repo, "deploy", "nginx", "compose.conf")
	if conf, err := os.ReadFile(confPath); c.check(err == nil, "cannot read %s: %v", confPath, err) {
		text := string(conf)
		c.check(regexp.MustCompile(fmt.Sprintf(`(?m)^\s*listen\s+%d(\s+[a-z_=0-9]+)*\s*;`, topo.lbPort)).MatchString(text),
			"%s: no `listen %d [options];`", confPath, topo.lbPort)
		upstreams := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([A-Za-z0-9._-]+:\d+)`).FindAllStringSubmatch(text, -1) {
			upstreams[m[1]] = true
		}
		wantUp := map[string]bool{}
		for _, ts := range topo.services {
			if ts.httpPort != 0 {
				wantUp[fmt.Sprintf("%s:%d", ts.name, ts.httpPort)] = true
			}
		}
		for _, in := range topo.infra {
			if in.name != objectStoreInfra {
				continue
			}
			wantUp[fmt.Sprintf("%s:%d", in.composeName, in.composePort)] = true
			checkDep(c, project, topo.lbName, in.composeName, types.ServiceConditionHealthy)
			// The store listens where nginx and the services look for it.
			if s, ok := project.Services[in.composeName]; ok {
				cmd := strings.Join(append(append([]string{}, s.Entrypoint...), s.Command...), " ")
				c.check(regexp.MustCompile(fmt.Sprintf(`--port[ =]\S*:%d\b`, in.composePort)).MatchString(cmd),
					"%s: command %q does not listen on port %d (--port :%d)", in.composeName, cmd, in.composePort, in.composePort)
				if hasHealthcheck(s) {
					test := strings.Join(s.HealthCheck.Test, " ")
					c.check(strings.Contains(test, fmt.Sprintf(":%d/", in.composePort)),
						"%s: healthcheck %q does not probe port %d", in.composeName, test, in.composePort)
				}
			}
		}
		for _, u := range sortedKeys(wantUp) {
			c.check(upstreams[u], "%s: no upstream server %s", confPath, u)
		}
		for _, u := range sortedKeys(upstreams) {
			c.check(wantUp[u], "%s: upstream server %s is not a public port of the topology (nor the object store)", confPath, u)
		}
	}

	for _, f := range c.failed {
		fmt.Fprintln(os.Stderr, "compose-check: FAIL:", f)
	}
	fmt.Printf("compose-check: %d passed, %d failed\n", c.passed, len(c.failed))
	if len(c.failed) > 0 {
		os.Exit(1)
	}
}
