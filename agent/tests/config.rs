//! The config as an operator meets it: the documented files load, and every mistake is one line naming
//! the file, the key and the problem.

use o365probe::config::{
    Config, ConfigError, Format, HttpChecks, KeySource, OfficeLocation, Proxy, Resolvers,
    DEFAULT_TOML_PATH,
};
use o365probe_core::wire::endpoint::{Category, ServiceArea};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The file the issue says must be accepted as is.
const MINIMAL: &str = r#"
[dns]
resolver = "198.51.100.53"            # default: the system's resolvers
[tls]
trusted_roots = "/path/to/roots.pem"  # default: the bundled Microsoft/DigiCert roots
[[target]]
host = "outlook.office365.com"
service = "exchange"                  # exchange | sharepoint | teams | common
category = "optimize"                 # optimize | allow | default
tcp = [443]
[[target]]
host = "world.tr.teams.microsoft.com"
service = "teams"
category = "optimize"
udp = [3478]
"#;

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "o365probe-config-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(name: &str, text: &str) -> PathBuf {
    let path = temp_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn toml_error(text: &str) -> (PathBuf, String) {
    let path = write("config.toml", text);
    let err = Config::load(&path).expect_err("accepted a bad file");
    (path, err.to_string())
}

fn uci_error(text: &str) -> (PathBuf, String) {
    let path = write("o365probe", text);
    let err = Config::from_uci(&path).expect_err("accepted a bad file");
    (path, err.to_string())
}

/// Asserts the error is exactly `FILE: rest`, on one line.
fn assert_line(path: &Path, line: &str, rest: &str) {
    assert!(!line.contains('\n'), "more than one line: {line:?}");
    assert_eq!(line, format!("{}: {rest}", path.display()));
}

#[test]
fn the_minimal_lab_file_is_accepted_as_is() {
    let path = write("config.toml", MINIMAL);
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.dns.resolver,
        Resolvers::Addrs(vec!["198.51.100.53:53".parse().unwrap()])
    );
    assert_eq!(
        c.tls.trusted_roots.as_deref(),
        Some(Path::new("/path/to/roots.pem"))
    );
    assert_eq!(c.targets.len(), 2);
    let owa = &c.targets[0];
    assert_eq!(owa.host, "outlook.office365.com");
    assert_eq!(owa.service, ServiceArea::Exchange);
    assert_eq!(owa.category, Category::Optimize);
    assert_eq!(owa.tcp, vec![443]);
    assert!(owa.udp.is_empty());
    assert!(
        owa.required,
        "a target the operator lists is required by default"
    );
    assert_eq!(c.targets[1].service, ServiceArea::Teams);
    assert_eq!(c.targets[1].udp, vec![3478]);
    // A lab points the agent at its own zone: listing targets must not also send it to Microsoft.
    assert!(!c.endpoints.enabled);
    // Everything else keeps its default.
    assert_eq!(c.teams.count, 750);
    assert_eq!(c.teams.spacing, Duration::from_millis(20));
    assert_eq!(c.agent.state_dir, Path::new("/var/lib/o365probe"));
}

#[test]
fn an_empty_file_means_the_documented_defaults() {
    let path = write("config.toml", "# nothing here\n");
    let c = Config::load(&path).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.dns.resolver, Resolvers::System);
    assert_eq!(c.dns.whoami_a, "whoami.akamai.net");
    assert_eq!(c.dns.whoami_txt, "o-o.myaddr.l.google.com");
    assert!(
        c.endpoints.enabled,
        "no targets given: they come from Microsoft"
    );
    assert_eq!(c.endpoints.service_url, "https://endpoints.office.com");
    assert_eq!(c.endpoints.refresh_interval, Duration::from_secs(3600));
    assert_eq!(c.http.proxy, Proxy::Env);
    assert_eq!(c.http.check, HttpChecks::All);
    assert!(c.collector.is_none());
    assert!(c.uplinks.is_empty());
}

/// Every default in docs/config.md's reference that can be written as a value is the default: setting
/// a key of a single section to its documented default changes nothing.
#[test]
fn every_documented_default_is_the_default() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md"))
        .expect("docs/config.md");
    let defaults = Config::default();
    let mut section = None;
    let mut checked = Vec::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            // `[dns]` is a single section; `[[target]]` and `[[uplink]]` are not defaults' business.
            section = heading
                .strip_prefix("`[")
                .and_then(|h| h.split_once("]`"))
                .map(|(name, _)| name.to_owned())
                .filter(|name| !name.starts_with('['));
            continue;
        }
        let (Some(section), Some(row)) = (&section, line.strip_prefix("| `")) else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let (Some(key), Some(default)) = (cells.first(), cells.get(2)) else {
            continue;
        };
        let key = key.trim_end_matches('`');
        // The default's first `code`: `"2s"`, `10485760` (10 MiB), `/etc/resolv.conf`.
        let Some(value) = default
            .strip_prefix('`')
            .and_then(|d| d.split_once('`'))
            .map(|(v, _)| v)
        else {
            continue;
        };
        let value = if value.starts_with('/') {
            format!("{value:?}")
        } else {
            value.to_owned()
        };
        let text = format!("[{section}]\n{key} = {value}\n");
        let path = write("config.toml", &text);
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c, defaults, "{section}.{key}: documented default {value}");
        checked.push(format!("{section}.{key}"));
    }
    // Nearly every key of the single sections says its default as a value.
    assert!(checked.len() >= 30, "only {checked:?}");
}

/// The TOML and UCI examples of docs/config.md load, and say the same thing.
#[test]
fn the_documented_examples_load_and_agree() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md"))
        .expect("docs/config.md");
    let block = |fence: &str| {
        let start = doc
            .find(fence)
            .unwrap_or_else(|| panic!("no {fence} block"))
            + fence.len();
        let len = doc[start..].find("```").unwrap();
        doc[start..start + len].to_owned()
    };
    let dir = temp_dir();
    let toml_path = dir.join("config.toml");
    std::fs::write(&toml_path, block("```toml\n")).unwrap();
    let uci_path = dir.join("o365probe");
    std::fs::write(&uci_path, block("```uci\n")).unwrap();
    let from_toml = Config::load(&toml_path).unwrap_or_else(|e| panic!("{e}"));
    let from_uci = Config::from_uci(&uci_path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_toml, from_uci);
    // And the example is not the defaults in disguise.
    assert_ne!(from_toml, Config::default());
    assert_eq!(from_toml.uplinks.len(), 2);
    assert!(from_toml.collector.is_some());
}

#[test]
fn every_key_is_reachable_from_toml() {
    let path = write(
        "config.toml",
        r#"
[agent]
office = "London HQ"
location = "lhr"
state_dir = "state"
[dns]
resolver = ["198.51.100.53", "[2001:db8::53]:5353"]
resolv_conf = "/tmp/resolv.conf.auto"
timeout = "1500ms"
tries = 3
whoami_a = "whoami.example.net"
whoami_txt = "txt.whoami.example.net"
[tls]
trusted_roots = "roots.pem"
expected_issuers = ["Example CA"]
timeout = "4s"
[tcp]
samples = 5
spacing = "50ms"
timeout = "1s"
[teams]
count = 100
spacing = "10ms"
drain = "2s"
dscp_ef = true
ports = [3478, 3479]
[http]
proxy = "http://proxy.example:3128"
timeout = "5s"
check = "required"
[download]
url = "https://contoso.sharepoint.com/sites/it/test.bin"
max_bytes = 1000000
timeout = "20s"
latency_interval = "250ms"
[path]
traceroute = false
max_hops = 20
[[uplink]]
name = "fibre"
interface = "eth1"
[[uplink]]
name = "lte"
source = "192.0.2.10"
[endpoints]
enabled = true
instance = "usgovdod"
tenant = "Contoso.onmicrosoft.com"
service_url = "http://192.0.2.80:8080/"
refresh_interval = "10m"
services = ["teams"]
categories = ["optimize"]
required_only = true
[[target]]
host = "192.0.2.1"
service = "common"
tcp = [443, 80]
http_path = "/health"
required = false
[collector]
url = "udp://collector.example:4433"
agent_id = 17
key_file = "agent.key"
"#,
    );
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let dir = path.parent().unwrap();
    assert_eq!(c.agent.office.as_deref(), Some("London HQ"));
    assert!(matches!(c.agent.location, Some(OfficeLocation::Code(code)) if code.as_str() == "LHR"));
    assert_eq!(
        c.agent.state_dir,
        dir.join("state"),
        "relative to the config file"
    );
    assert_eq!(
        c.dns.resolver,
        Resolvers::Addrs(vec![
            "198.51.100.53:53".parse().unwrap(),
            "[2001:db8::53]:5353".parse().unwrap()
        ])
    );
    assert_eq!(c.dns.timeout, Duration::from_millis(1500));
    assert_eq!(c.dns.tries, 3);
    assert_eq!(c.tls.trusted_roots, Some(dir.join("roots.pem")));
    assert_eq!(c.tls.expected_issuers, vec!["Example CA".to_owned()]);
    assert_eq!(
        (c.tcp.samples, c.tcp.spacing),
        (5, Duration::from_millis(50))
    );
    assert_eq!((c.teams.count, c.teams.dscp_ef), (100, true));
    assert_eq!(c.teams.ports, vec![3478, 3479]);
    assert_eq!(c.http.proxy, Proxy::Url("http://proxy.example:3128".into()));
    assert_eq!(c.http.check, HttpChecks::Required);
    assert_eq!(c.download.max_bytes, 1_000_000);
    assert_eq!(c.download.latency_interval, Duration::from_millis(250));
    assert!(!c.path.traceroute);
    assert_eq!(c.uplinks[1].source, Some("192.0.2.10".parse().unwrap()));
    assert!(c.endpoints.enabled);
    assert_eq!(c.endpoints.instance.as_str(), "USGovDoD");
    assert_eq!(c.endpoints.tenant.as_deref(), Some("contoso"));
    assert_eq!(c.endpoints.refresh_interval, Duration::from_secs(600));
    assert_eq!(c.endpoints.services, vec![ServiceArea::Teams]);
    assert!(c.endpoints.required_only);
    assert_eq!(c.targets[0].http_path.as_deref(), Some("/health"));
    assert!(!c.targets[0].required);
    assert_eq!(c.targets[0].category, Category::Default);
    let collector = c.collector.unwrap();
    assert_eq!(collector.agent_id, 17);
    assert_eq!(collector.key, KeySource::File(dir.join("agent.key")));
    // The key file is read when `run` needs it, not when `check` loads the config.
    let err = collector.load_key(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: collector.key_file: cannot read ",
            path.display()
        )),
        "{err}"
    );
    std::fs::write(dir.join("agent.key"), format!("{}\n", "ab".repeat(32))).unwrap();
    assert_eq!(collector.load_key(&path).unwrap().as_bytes(), &[0xab; 32]);
}

#[test]
fn mistakes_name_the_file_the_key_and_the_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "[[target]]\nhost = \"a.example\"\nservice = \"exchange\"\ntcp = [443]\n[[target]]\nhost = \"b.example\"\nservice = \"mail\"\ntcp = [443]\n",
            "target[1].service: unknown service \"mail\" (expected exchange, sharepoint, teams or common)",
        ),
        (
            "[dns]\nresolvr = \"198.51.100.53\"\n",
            "dns.resolvr: unknown key (did you mean resolver?)",
        ),
        ("[dsn]\ntimeout = \"2s\"\n", "dsn: unknown section (did you mean dns?)"),
        (
            "[teams]\nmystery = 1\n",
            "teams.mystery: unknown key (expected count, spacing, drain, dscp_ef or ports)",
        ),
        (
            "[[target]]\nhost = \"a.example\"\nservice = \"exchange\"\ntcp = [443, 70000]\n",
            "target[0].tcp[1]: port 70000 is out of range (1-65535)",
        ),
        (
            "[[target]]\nhost = \"a.example\"\nservice = \"exchange\"\nudp = [0]\n",
            "target[0].udp[0]: port 0 is out of range (1-65535)",
        ),
        (
            "[[target]]\nhost = \"a.example\"\nservice = \"exchange\"\n",
            "target[0]: \"a.example\" needs at least one tcp or udp port",
        ),
        (
            "[[target]]\nservice = \"exchange\"\ntcp = [443]\n",
            "target[0].host: missing (this key is required)",
        ),
        (
            "[[target]]\nhost = \"*.teams.microsoft.com\"\nservice = \"teams\"\nudp = [3478]\n",
            "target[0].host: \"*.teams.microsoft.com\" is a wildcard; a probe needs a concrete host name",
        ),
        (
            "[[target]]\nhost = \"a.example\"\nservice = \"exchange\"\ntcp = [443, 443]\n",
            "target[0].tcp[1]: port 443 is listed twice",
        ),
        (
            "[dns]\nresolver = \"dns.example\"\n",
            "dns.resolver: invalid resolver \"dns.example\" (expected an IP address with an optional port, like 198.51.100.53, 198.51.100.53:53 or [2001:db8::53]:53, or \"system\")",
        ),
        (
            "[dns]\nresolver = [\"198.51.100.53\", \"nope\"]\n",
            "dns.resolver[1]: invalid resolver \"nope\" (expected an IP address with an optional port, like 198.51.100.53, 198.51.100.53:53 or [2001:db8::53]:53, or \"system\")",
        ),
        (
            "[dns]\ntimeout = 2\n",
            "dns.timeout: a bare number 2: durations are strings with a unit, like \"2s\" or \"2ms\"",
        ),
        (
            "[dns]\ntimeout = \"2 fortnights\"\n",
            "dns.timeout: invalid duration \"2 fortnights\" (expected a number and a unit: us, ms, s, m, h or d, like \"20ms\", \"2s\" or \"1h\")",
        ),
        ("[dns]\ntimeout = \"5m\"\n", "dns.timeout: 5m is out of range (10ms to 1m)"),
        ("[dns]\ntries = 0\n", "dns.tries: 0 is out of range (1 to 10)"),
        ("[tcp]\nsamples = \"ten\"\n", "tcp.samples: invalid type: string \"ten\", expected a whole number"),
        (
            "[collector]\nurl = \"https://collector.example\"\nagent_id = 1\nkey = \"00112233\"\n",
            "collector.key: not a key: expected 64 hex digits, found 8 characters",
        ),
        (
            "[collector]\nurl = \"https://collector.example\"\nagent_id = 1\n",
            "collector.key: missing (give key, 64 hex digits, or key_file)",
        ),
        (
            "[collector]\nurl = \"ftp://collector.example\"\nagent_id = 1\nkey_file = \"/k\"\n",
            "collector.url: unsupported scheme \"ftp\" in \"ftp://collector.example\" (expected https, http or udp)",
        ),
        (
            "[agent]\nlocation = \"QQQ\"\n",
            "agent.location: unknown location code \"QQQ\" (expected a known IATA code like \"LHR\", or \"latitude,longitude\")",
        ),
        (
            "[agent]\nlocation = \"91,0\"\n",
            "agent.location: \"91,0\" is off the map (latitude -90 to 90, longitude -180 to 180)",
        ),
        (
            "[http]\nproxy = \"socks5://proxy.example:1080\"\n",
            "http.proxy: invalid proxy \"socks5://proxy.example:1080\" (expected \"env\", \"none\" or an http:// URL like \"http://proxy.example:3128\")",
        ),
        (
            "[endpoints]\nrefresh_interval = \"5m\"\n",
            "endpoints.refresh_interval: below \"1h\": Microsoft asks clients to check the version at most hourly",
        ),
        (
            "[endpoints]\ncategories = [\"optimise\"]\n",
            "endpoints.categories[0]: unknown category \"optimise\" (expected optimize, allow or default)",
        ),
        (
            "[endpoints]\nservices = []\n",
            "endpoints.services: an empty list: nothing would be probed (set enabled = false instead)",
        ),
        (
            "[endpoints]\ncategories = []\n",
            "endpoints.categories: an empty list: nothing would be probed (set enabled = false instead)",
        ),
        (
            "[[uplink]]\nname = \"wan\"\n",
            "uplink[0]: needs an interface, a source address, or both",
        ),
        (
            "[[uplink]]\nname = \"wan\"\ninterface = \"eth1\"\n[[uplink]]\nname = \"wan\"\ninterface = \"eth2\"\n",
            "uplink[1].name: \"wan\" is already the name of uplink[0]",
        ),
        (
            "[[uplink]]\nname = \"wan\"\ninterface = \"a-very-long-interface\"\n",
            "uplink[0].interface: invalid interface name \"a-very-long-interface\" (1 to 15 characters, no spaces, / or :)",
        ),
    ];
    for (text, expected) in cases {
        let (path, line) = toml_error(text);
        assert_line(&path, &line, expected);
    }
}

#[test]
fn a_toml_syntax_error_gives_line_and_column() {
    let (path, line) = toml_error("[dns]\ntimeout = \"2s\"\nresolver = = \"x\"\n");
    let prefix = format!("{}:3:12: invalid TOML: ", path.display());
    assert!(line.starts_with(&prefix), "{line}");
    assert!(!line.contains('\n'), "{line:?}");
    let (path, line) = toml_error("[dns]\ntries = 2\ntries = 3\n");
    assert!(
        line.starts_with(&format!("{}:3:", path.display())),
        "{line}"
    );
    assert!(line.contains("duplicate key"), "{line}");
}

#[test]
fn a_hostile_value_cannot_break_the_one_line() {
    let (path, line) = toml_error(
        "[[target]]\nhost = \"a.example\"\nservice = \"mail\\nFAKE: all good\"\ntcp = [443]\n",
    );
    assert_line(
        &path,
        &line,
        "target[0].service: unknown service \"mail\\nFAKE: all good\" (expected exchange, sharepoint, teams or common)",
    );
}

#[test]
fn an_unreadable_file_is_named() {
    let path = temp_dir().join("absent.toml");
    let line = Config::load(&path).unwrap_err().to_string();
    assert!(
        line.starts_with(&format!("{}: cannot read: ", path.display())),
        "{line}"
    );
    let path = write("config.toml", "");
    std::fs::write(&path, b"[agent]\noffice = \"caf\xe9\"\n").unwrap();
    let line = Config::load(&path).unwrap_err().to_string();
    assert_eq!(line, format!("{}:2:14: not UTF-8 text", path.display()));
}

const UCI: &str = "
# o365probe on the branch router
config agent 'agent'
\toption office 'Leeds'
\toption location '53.87,-1.66'

config dns 'dns'
\tlist resolver '198.51.100.53'
\tlist resolver \"198.51.100.54:53\"

config teams
\toption dscp_ef '1'

config uplink 'wan'
\toption interface 'eth1'

config target 'owa'
\toption host 'outlook.office365.com'
\toption service 'exchange'
\toption category 'optimize'
\tlist tcp '443'
\tlist tcp '80'

config target
\toption host 'world.tr.teams.microsoft.com'
\toption service 'teams'
\toption udp 3478
\toption required no
";

#[test]
fn uci_maps_sections_to_the_same_config() {
    let path = write("o365probe", UCI);
    let c = Config::from_uci(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.agent.office.as_deref(), Some("Leeds"));
    assert!(
        matches!(c.agent.location, Some(OfficeLocation::Point(p)) if p.lat == 53.87 && p.lon == -1.66)
    );
    assert_eq!(
        c.dns.resolver,
        Resolvers::Addrs(vec![
            "198.51.100.53:53".parse().unwrap(),
            "198.51.100.54:53".parse().unwrap()
        ])
    );
    assert!(c.teams.dscp_ef);
    assert_eq!(c.uplinks.len(), 1);
    assert_eq!(
        c.uplinks[0].name, "wan",
        "an uplink is named after its section"
    );
    assert_eq!(c.uplinks[0].interface.as_deref(), Some("eth1"));
    assert_eq!(c.targets.len(), 2);
    assert_eq!(c.targets[0].tcp, vec![443, 80]);
    assert_eq!(
        c.targets[1].udp,
        vec![3478],
        "a single option where a list is expected"
    );
    assert!(!c.targets[1].required);
    assert!(!c.endpoints.enabled);

    // The same settings in TOML make the same Config.
    let toml = write(
        "config.toml",
        r#"
[agent]
office = "Leeds"
location = "53.87,-1.66"
[dns]
resolver = ["198.51.100.53", "198.51.100.54:53"]
[teams]
dscp_ef = true
[[uplink]]
name = "wan"
interface = "eth1"
[[target]]
host = "outlook.office365.com"
service = "exchange"
category = "optimize"
tcp = [443, 80]
[[target]]
host = "world.tr.teams.microsoft.com"
service = "teams"
udp = [3478]
required = false
"#,
    );
    let mut from_toml = Config::load(&toml).unwrap();
    // Relative defaults are anchored to each file's own directory; these are absolute, so equal.
    from_toml.agent.state_dir = c.agent.state_dir.clone();
    assert_eq!(from_toml, c);
}

#[test]
fn uci_mistakes_use_uci_names_and_line_numbers() {
    let cases: &[(&str, &str)] = &[
        (
            "config target\n\toption host 'a.example'\n\toption service 'exchange'\n\tlist tcp 443\nconfig target\n\toption host 'b.example'\n\toption service 'mail'\n\tlist tcp 443\n",
            ": target[1].service: unknown service \"mail\" (expected exchange, sharepoint, teams or common)",
        ),
        (
            "config dns\n\toption resolvr '198.51.100.53'\n",
            ": dns.resolvr: unknown key (did you mean resolver?)",
        ),
        ("config dsn\n\toption timeout 2s\n", ": dsn: unknown section type (did you mean dns?)"),
        (
            "config dns\n\toption tries 2\n\nconfig dns\n\toption tries 3\n",
            ": dns: section given twice (lines 1 and 4); only one `config dns` is allowed",
        ),
        (
            "config target\n\toption host 'a.example'\n\toption service 'exchange'\n\tlist tcp 'https'\n",
            ": target[0].tcp[0]: invalid number \"https\"",
        ),
        (
            "config teams\n\toption dscp_ef 'maybe'\n",
            ": teams.dscp_ef: invalid boolean \"maybe\" (expected 1 or 0, yes or no, on or off, true or false)",
        ),
        (
            "config agent\n\tlist office 'a'\n\tlist office 'b'\n",
            ": agent.office: expected a single value (option), found a list",
        ),
        ("config dns\n\toption tries 2 3\n", ":2: too many arguments to option (it takes a name and a value)"),
        ("\toption tries 2\n", ":1: option before the first config section"),
        ("config dns\n\toption 'bad name' 2\n", ":2: invalid name \"bad name\" (letters, digits and _ only)"),
        ("config dns\n\n\toption resolver 'open\n", ":3: unterminated ' quote (the file ends inside it)"),
        ("config dns\n\tset tries 2\n", ":2: unknown statement \"set\" (expected package, config, option or list)"),
        (
            "config dns 'main'\nconfig tcp 'main'\n",
            ":2: section \"main\" given again with type \"tcp\" (line 1 has type \"dns\")",
        ),
    ];
    for (text, expected) in cases {
        let (path, line) = uci_error(text);
        assert!(!line.contains('\n'), "{line:?}");
        assert_eq!(line, format!("{}{expected}", path.display()));
    }
}

#[test]
fn uci_follows_libuci_for_repeats_and_deletes() {
    // A named section given again continues; an option given again replaces; '' deletes.
    let path = write(
        "o365probe",
        "config tcp 'tcp'\n\toption samples 3\nconfig dns 'dns'\n\toption tries 4\nconfig tcp 'tcp'\n\toption samples 7\n\toption timeout '1s'\n\toption timeout ''\n",
    );
    let c = Config::from_uci(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.tcp.samples, 7);
    assert_eq!(
        c.tcp.timeout,
        Duration::from_secs(3),
        "deleted: back to the default"
    );
    assert_eq!(c.dns.tries, 4);
}

#[test]
fn the_default_path_prefers_toml_unless_only_uci_exists() {
    let dir = temp_dir();
    let toml = dir.join("config.toml");
    let uci = dir.join("o365probe");
    assert_eq!(
        Config::choose_path(&toml, &uci),
        (toml.clone(), Format::Toml)
    );
    std::fs::write(&uci, "config dns\n").unwrap();
    assert_eq!(Config::choose_path(&toml, &uci), (uci.clone(), Format::Uci));
    std::fs::write(&toml, "").unwrap();
    assert_eq!(
        Config::choose_path(&toml, &uci),
        (toml.clone(), Format::Toml)
    );
    assert_eq!(
        Config::default_path().0,
        if Path::new("/etc/config/o365probe").exists() && !Path::new(DEFAULT_TOML_PATH).exists() {
            PathBuf::from("/etc/config/o365probe")
        } else {
            PathBuf::from(DEFAULT_TOML_PATH)
        }
    );
}

#[test]
fn load_any_reads_either_format() {
    let uci = write("o365probe", "# comment\nconfig tcp\n\toption samples 4\n");
    assert_eq!(Config::load_any(&uci).unwrap().tcp.samples, 4);
    let toml = write("settings", "[tcp]\nsamples = 6\n");
    assert_eq!(Config::load_any(&toml).unwrap().tcp.samples, 6);
}

#[test]
fn errors_expose_the_key_for_programs() {
    let path = write("config.toml", "[tcp]\nsamples = 0\n");
    let err: ConfigError = Config::load(&path).unwrap_err();
    assert_eq!(err.key(), Some("tcp.samples"));
    assert_eq!(err.file, path);
    assert_eq!(o365probe::config::EXIT_CODE, 2);
}
