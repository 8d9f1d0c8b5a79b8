//! A tiny authoritative DNS server for tests, on a loopback UDP port: MX, A,
//! TXT and PTR records from a table, built on hickory-proto (which
//! hickory-resolver brings anyway). Unknown names get NXDOMAIN; a known name
//! without records of the asked type gets an empty NOERROR answer; names
//! marked with [`Zone::servfail`] get SERVFAIL (a temporary failure). No
//! real DNS is ever asked.

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX, PTR, SOA, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[derive(Default, Clone)]
pub struct Zone {
    mx: HashMap<String, Vec<(u16, String)>>,
    a: HashMap<String, Vec<Ipv4Addr>>,
    txt: HashMap<String, Vec<String>>,
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

    /// A TXT record; text over 255 octets is split into several strings,
    /// as DNS requires (DKIM RSA keys are longer).
    pub fn txt(mut self, name: &str, text: &str) -> Zone {
        self.txt.entry(key(name)).or_default().push(text.to_owned());
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

    fn answer(&self, name: &Name, rtype: RecordType) -> Option<Vec<Record>> {
        let k = key(&name.to_ascii());
        let known = self.mx.contains_key(&k)
            || self.a.contains_key(&k)
            || self.txt.contains_key(&k)
            || self.ptr.contains_key(&k);
        if !known {
            return None;
        }
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
            RecordType::TXT => {
                for text in self.txt.get(&k).into_iter().flatten() {
                    let chunks: Vec<String> =
                        text.as_bytes().chunks(255).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
                    out.push(record(RData::TXT(TXT::new(chunks))));
                }
            }
            RecordType::PTR => {
                for host in self.ptr.get(&k).into_iter().flatten() {
                    out.push(record(RData::PTR(PTR(Name::from_ascii(format!("{host}.")).unwrap()))));
                }
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
    task: JoinHandle<()>,
}

impl TestDns {
    pub async fn start(zone: Zone) -> TestDns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let seen = queries.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
                let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
                let response = respond(&zone, &request, &seen);
                let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
            }
        });
        TestDns { addr, queries, task }
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
