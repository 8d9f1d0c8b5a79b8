//! A tiny authoritative DNS server for tests, on a loopback UDP port: MX,
//! A, AAAA, TXT, SRV, CNAME and PTR records from a table, built on
//! hickory-proto (which hickory-resolver brings anyway). Unknown names get
//! NXDOMAIN; a known name without records of the asked type gets an empty
//! NOERROR answer; names marked with [`Zone::servfail`] get SERVFAIL (a
//! temporary failure). No real DNS is ever asked.

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, SRV, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[derive(Default, Clone)]
pub struct Zone {
    mx: HashMap<String, Vec<(u16, String)>>,
    a: HashMap<String, Vec<Ipv4Addr>>,
    aaaa: HashMap<String, Vec<Ipv6Addr>>,
    /// Each record's character-strings.
    txt: HashMap<String, Vec<Vec<String>>>,
    srv: HashMap<String, Vec<(u16, u16, u16, String)>>,
    cname: HashMap<String, String>,
    ptr: HashMap<String, Vec<String>>,
    servfail: HashSet<String>,
    /// TTL of every answer, in seconds; 1 unless set.
    ttl: Option<u32>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    pub fn mx(mut self, domain: &str, preference: u16, host: &str) -> Zone {
        self.mx.entry(key(domain)).or_default().push((preference, host.to_owned()));
        self
    }

    pub fn a(mut self, host: &str, ip: Ipv4Addr) -> Zone {
        self.a.entry(key(host)).or_default().push(ip);
        self
    }

    pub fn aaaa(mut self, host: &str, ip: Ipv6Addr) -> Zone {
        self.aaaa.entry(key(host)).or_default().push(ip);
        self
    }

    /// A TXT record; text over 255 octets is split into several strings,
    /// as DNS requires (DKIM RSA keys are longer).
    pub fn txt(self, name: &str, text: &str) -> Zone {
        let chunks: Vec<String> = text.as_bytes().chunks(255).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        self.txt_strings(name, &chunks)
    }

    /// A TXT record of exactly these character-strings.
    pub fn txt_strings(mut self, name: &str, strings: &[&str]) -> Zone {
        self.txt.entry(key(name)).or_default().push(strings.iter().map(|s| s.to_string()).collect());
        self
    }

    /// A PTR record for `ip` (its in-addr.arpa / ip6.arpa name).
    pub fn ptr(mut self, ip: IpAddr, host: &str) -> Zone {
        let name = Name::from(ip).to_ascii();
        self.ptr.entry(key(&name)).or_default().push(host.to_owned());
        self
    }

    /// Every query for `name` gets SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Zone {
        self.servfail.insert(key(name));
        self
    }

    /// The TTL of every answer (so resolver caches keep them).
    pub fn ttl(mut self, secs: u32) -> Zone {
        self.ttl = Some(secs);
        self
    }

    fn soa(&self) -> Record {
        let ttl = self.ttl.unwrap_or(1);
        let name = |n: &str| Name::from_ascii(n).unwrap();
        let soa = SOA::new(name("ns.test."), name("hostmaster.test."), 1, 3600, 600, 86400, ttl);
        Record::from_rdata(Name::root(), ttl, RData::SOA(soa))
    }

    pub fn srv(mut self, name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Zone {
        self.srv.entry(key(name)).or_default().push((priority, weight, port, target.to_owned()));
        self
    }

    pub fn cname(mut self, name: &str, target: &str) -> Zone {
        self.cname.insert(key(name), target.to_owned());
        self
    }

    /// Adds the records of zone-file lines as `coimail dns` prints them
    /// (`NAME TTL IN TYPE DATA`; `;` comments skipped).
    pub fn with_printed(mut self, printed: &str) -> Zone {
        for line in printed.lines().filter(|l| !l.starts_with(';') && !l.trim().is_empty()) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (name, kind, data) = (f[0], f[3], &f[4..]);
            self = match kind {
                "MX" => self.mx(name, data[0].parse().unwrap(), data[1].trim_end_matches('.')),
                "A" => self.a(name, data[0].parse().unwrap()),
                "AAAA" => self.aaaa(name, data[0].parse().unwrap()),
                "TXT" => {
                    let rdata = line.split_once(" IN TXT ").unwrap().1;
                    let strings: Vec<&str> = rdata.split('"').skip(1).step_by(2).collect();
                    self.txt_strings(name, &strings)
                }
                "SRV" => self.srv(
                    name,
                    data[0].parse().unwrap(),
                    data[1].parse().unwrap(),
                    data[2].parse().unwrap(),
                    data[3],
                ),
                "CNAME" => self.cname(name, data[0]),
                other => panic!("unexpected record type {other} in {line:?}"),
            };
        }
        self
    }

    fn knows(&self, k: &str) -> bool {
        self.mx.contains_key(k)
            || self.a.contains_key(k)
            || self.aaaa.contains_key(k)
            || self.txt.contains_key(k)
            || self.srv.contains_key(k)
            || self.cname.contains_key(k)
            || self.ptr.contains_key(k)
    }

    fn answer(&self, name: &Name, rtype: RecordType) -> Option<Vec<Record>> {
        let k = key(&name.to_ascii());
        if !self.knows(&k) {
            return None;
        }
        let absolute = |host: &str| Name::from_ascii(format!("{}.", host.trim_end_matches('.'))).unwrap();
        let ttl = self.ttl.unwrap_or(1);
        let record = |data| Record::from_rdata(name.clone(), ttl, data);
        let mut out = Vec::new();
        match rtype {
            RecordType::MX => {
                for (pref, host) in self.mx.get(&k).into_iter().flatten() {
                    let exchange = Name::from_ascii(format!("{host}.")).unwrap();
                    out.push(record(RData::MX(MX::new(*pref, exchange))));
                }
            }
            RecordType::A => out.extend(self.a.get(&k).into_iter().flatten().map(|ip| record(RData::A(A(*ip))))),
            RecordType::AAAA => {
                out.extend(self.aaaa.get(&k).into_iter().flatten().map(|ip| record(RData::AAAA(AAAA(*ip)))))
            }
            RecordType::TXT => {
                out.extend(self.txt.get(&k).into_iter().flatten().map(|s| record(RData::TXT(TXT::new(s.clone())))))
            }
            RecordType::SRV => {
                for (priority, weight, port, target) in self.srv.get(&k).into_iter().flatten() {
                    let target = if target == "." { Name::root() } else { absolute(target) };
                    out.push(record(RData::SRV(SRV::new(*priority, *weight, *port, target))));
                }
            }
            RecordType::CNAME => out.extend(self.cname.get(&k).map(|t| record(RData::CNAME(CNAME(absolute(t)))))),
            RecordType::PTR => {
                out.extend(self.ptr.get(&k).into_iter().flatten().map(|h| record(RData::PTR(PTR(absolute(h))))))
            }
            _ => {}
        }
        Some(out)
    }
}

pub struct TestDns {
    pub addr: SocketAddr,
    /// Every query seen, as "name TYPE".
    pub queries: Arc<Mutex<Vec<String>>>,
    zone: Arc<Mutex<Zone>>,
    task: JoinHandle<()>,
}

impl TestDns {
    pub async fn start(zone: Zone) -> TestDns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let seen = queries.clone();
        let zone = Arc::new(Mutex::new(zone));
        let served = zone.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
                let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
                let zone = served.lock().unwrap().clone();
                let response = respond(&zone, &request, &seen);
                let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
            }
        });
        TestDns { addr, queries, zone, task }
    }

    /// Serves `zone` from now on (records have a TTL of 1 s unless the zone
    /// sets one, so resolvers see it a second later at most).
    pub fn set_zone(&self, zone: Zone) {
        *self.zone.lock().unwrap() = zone;
    }
}

fn respond(zone: &Zone, request: &Message, seen: &Mutex<Vec<String>>) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.message_type = MessageType::Response;
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    for q in &request.queries {
        seen.lock().unwrap().push(format!("{} {}", q.name.to_ascii(), q.query_type));
        response.add_query(q.clone());
        if zone.servfail.contains(&key(&q.name.to_ascii())) {
            response.metadata.response_code = ResponseCode::ServFail;
            continue;
        }
        match zone.answer(&q.name, q.query_type) {
            Some(records) if !records.is_empty() => {
                response.add_answers(records);
            }
            // NODATA and NXDOMAIN carry an SOA, as real servers' do: its
            // minimum is the negative TTL resolvers cache them for (RFC 2308).
            Some(_) => {
                response.add_authority(zone.soa());
            }
            None => {
                response.metadata.response_code = ResponseCode::NXDomain;
                response.add_authority(zone.soa());
            }
        }
    }
    response
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}
