//! THREAD and UID THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES.
//!
//! Threads are built in an arena of containers (a container without a
//! message is a "dummy"). Every walk over the trees is iterative, so a
//! hostile mailbox (a 10,000-message reply chain) cannot overflow the stack.

use super::search::eval::Hit;
use super::search::fold::fold;
use super::search::parse::{Request, ThreadAlg};
use super::sort::{Fields, base_subject, with_fields};
use crate::selected::SeqNum;
use crate::session::{CmdResult, Done, Session};
use std::collections::HashMap;
use std::fmt::Write;

/// One matching message as threading sees it.
struct Msg {
    /// What the response names it by: UID or sequence number.
    number: u32,
    seq: SeqNum,
    /// RFC 5256 §2.2 sent date (Date header, else INTERNALDATE).
    sent: i64,
    fields: Fields,
}

#[derive(Default)]
struct Container {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

#[derive(Default)]
struct Forest {
    nodes: Vec<Container>,
    roots: Vec<usize>,
}

pub(crate) async fn thread(s: &mut Session, req: &Request, alg: ThreadAlg) -> CmdResult {
    let hits = super::search::find(s, req).await?;
    let rows = with_fields(s, hits).await?;
    let msgs: Vec<Msg> = rows.into_iter().map(|(h, fields)| msg(h, fields, req.uid)).collect();
    let forest = match alg {
        ThreadAlg::OrderedSubject => ordered_subject(&msgs),
        ThreadAlg::References => references(&msgs),
    };
    let mut line = String::from("* THREAD ");
    format(&forest, &msgs, &mut line);
    let line = line.trim_end().to_owned() + "\r\n";
    s.conn.out().extend_from_slice(line.as_bytes());
    Ok(Done::ok(if req.uid { "UID THREAD completed" } else { "THREAD completed" }))
}

fn msg(h: Hit, fields: Fields, uid: bool) -> Msg {
    Msg {
        number: if uid { h.meta.uid.into() } else { h.seq.into() },
        seq: h.seq,
        sent: fields.sent_or(h.meta.internal_date),
        fields,
    }
}

impl Forest {
    fn add(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Container { msg, ..Container::default() });
        self.nodes.len() - 1
    }

    fn node(&self, n: usize) -> Option<&Container> {
        self.nodes.get(n)
    }

    fn children(&self, n: usize) -> &[usize] {
        self.node(n).map_or(&[], |c| &c.children)
    }

    fn is_dummy(&self, n: usize) -> bool {
        self.node(n).is_none_or(|c| c.msg.is_none())
    }

    fn link(&mut self, parent: usize, child: usize) {
        if let Some(c) = self.nodes.get_mut(child) {
            c.parent = Some(parent);
        }
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.push(child);
        }
    }

    fn unlink(&mut self, child: usize) {
        let Some(parent) = self.nodes.get_mut(child).and_then(|c| c.parent.take()) else { return };
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.retain(|&c| c != child);
        }
    }

    /// Whether `a` is `b` or one of its ancestors: linking `a` below `b`
    /// would make a loop.
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        if a != b && self.children(a).is_empty() {
            return false;
        }
        let mut cur = Some(b);
        while let Some(n) = cur {
            if n == a {
                return true;
            }
            cur = self.node(n).and_then(|c| c.parent);
        }
        false
    }

    /// Every node below `roots`, children before their parent.
    fn post_order(&self, roots: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack: Vec<(usize, bool)> = roots.iter().map(|&r| (r, false)).collect();
        while let Some((n, expanded)) = stack.pop() {
            if expanded {
                out.push(n);
            } else {
                stack.push((n, true));
                stack.extend(self.children(n).iter().map(|&c| (c, false)));
            }
        }
        out
    }

    /// The message a container is sorted and named by: its own, or for a
    /// dummy its first child's (RFC 5256 §3 REFERENCES steps 4-6).
    fn first_msg(&self, n: usize) -> Option<usize> {
        let c = self.node(n)?;
        c.msg.or_else(|| c.children.first().and_then(|&k| self.node(k)?.msg))
    }

    /// Sorts every set of siblings by sent date, then sequence number,
    /// deepest first so a dummy's first child is known before it is placed.
    fn sort_siblings(&mut self, msgs: &[Msg]) {
        let key = |f: &Forest, n: usize| f.first_msg(n).and_then(|m| msgs.get(m)).map(|m| (m.sent, m.seq));
        for n in self.post_order(&self.roots.clone()) {
            let mut kids = std::mem::take(&mut self.nodes[n].children);
            kids.sort_by_key(|&k| key(self, k));
            self.nodes[n].children = kids;
        }
        let mut roots = std::mem::take(&mut self.roots);
        roots.sort_by_key(|&r| key(self, r));
        self.roots = roots;
    }
}

/// RFC 5256 §3 ORDEREDSUBJECT: messages grouped by base subject; in each
/// group the earliest message is the parent of all the others; groups and
/// children in sent-date order.
fn ordered_subject(msgs: &[Msg]) -> Forest {
    let mut order: Vec<(String, i64, SeqNum, usize)> =
        msgs.iter().enumerate().map(|(i, m)| (fold(&base_subject(&m.fields.subject).0), m.sent, m.seq, i)).collect();
    order.sort();
    let mut f = Forest::default();
    let mut current: Option<(&str, usize)> = None;
    for (subject, _, _, i) in &order {
        let node = f.add(Some(*i));
        match current {
            Some((s, parent)) if s == subject => f.link(parent, node),
            _ => {
                f.roots.push(node);
                current = Some((subject, node));
            }
        }
    }
    f.sort_siblings(msgs);
    f
}

/// RFC 5256 §3 REFERENCES (after JWZ's algorithm).
fn references(msgs: &[Msg]) -> Forest {
    let mut f = Forest::default();
    link_references(&mut f, msgs);
    // (2) The root set: every container without a parent.
    let roots: Vec<usize> = (0..f.nodes.len()).filter(|&n| f.nodes[n].parent.is_none()).collect();
    // (3) Prune dummies.
    f.roots = prune(&mut f, roots);
    // (4) Sort the root set (and, for dummies, their children).
    f.sort_siblings(msgs);
    // (5) Merge threads with the same base subject.
    merge_subjects(&mut f, msgs);
    // (6) Sort every set of siblings.
    f.sort_siblings(msgs);
    f
}

/// Step (1): containers for every message and referenced id, linked.
fn link_references(f: &mut Forest, msgs: &[Msg]) {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        // Missing or duplicate Message-IDs: the message gets a container of its own.
        let this = match m.fields.message_id.as_deref().and_then(|id| ids.get(id).map(|&n| (id, n))) {
            Some((_, n)) if f.nodes[n].msg.is_none() => {
                f.nodes[n].msg = Some(i);
                n
            }
            Some(_) | None => {
                let n = f.add(Some(i));
                if let Some(id) = m.fields.message_id.as_deref().filter(|id| !ids.contains_key(id)) {
                    ids.insert(id, n);
                }
                n
            }
        };
        // References, or failing that the first In-Reply-To id.
        let refs = if m.fields.references.is_empty() {
            m.fields.in_reply_to.get(..1).unwrap_or_default()
        } else {
            &m.fields.references[..]
        };
        let mut prev: Option<usize> = None;
        for id in refs {
            let n = match ids.get(id.as_str()) {
                Some(&n) => n,
                None => {
                    let n = f.add(None);
                    ids.insert(id, n);
                    n
                }
            };
            // (1A) Keep existing links; never make a loop.
            if let Some(p) = prev
                && f.nodes[n].parent.is_none()
                && !f.is_ancestor(n, p)
            {
                f.link(p, n);
            }
            prev = Some(n);
        }
        // (1B) The last reference is the parent, replacing any earlier guess.
        f.unlink(this);
        if let Some(p) = prev
            && !f.is_ancestor(this, p)
        {
            f.link(p, this);
        }
    }
}

/// Step (3): drop empty dummies; splice a dummy's children into its place,
/// except at the root where a dummy with several children stays.
fn prune(f: &mut Forest, roots: Vec<usize>) -> Vec<usize> {
    for n in f.post_order(&roots) {
        let kids = std::mem::take(&mut f.nodes[n].children);
        let mut kept = Vec::with_capacity(kids.len());
        for k in kids {
            if f.is_dummy(k) {
                let grandkids = std::mem::take(&mut f.nodes[k].children);
                for &g in &grandkids {
                    f.nodes[g].parent = Some(n);
                }
                kept.extend(grandkids);
            } else {
                kept.push(k);
            }
        }
        f.nodes[n].children = kept;
    }
    let mut out = Vec::with_capacity(roots.len());
    for r in roots {
        let kids = f.children(r).len();
        if f.is_dummy(r) && kids <= 1 {
            let kids = std::mem::take(&mut f.nodes[r].children);
            for &k in &kids {
                f.nodes[k].parent = None;
            }
            out.extend(kids);
        } else {
            out.push(r);
        }
    }
    out
}

/// Step (5): threads whose base subjects are equal are gathered.
fn merge_subjects(f: &mut Forest, msgs: &[Msg]) {
    let subject = |f: &Forest, n: usize| {
        let m = f.first_msg(n).and_then(|m| msgs.get(m));
        m.map(|m| base_subject(&m.fields.subject)).map(|(s, reply)| (fold(&s), reply)).unwrap_or_default()
    };
    let is_reply = |f: &Forest, n: usize| !f.is_dummy(n) && subject(f, n).1;
    // (5B) One container per subject: prefer dummies, then non-replies.
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &f.roots {
        let (s, _) = subject(f, r);
        if s.is_empty() {
            continue;
        }
        match table.get(&s) {
            Some(&t) if !f.is_dummy(t) && (f.is_dummy(r) || (is_reply(f, t) && !is_reply(f, r))) => {
                table.insert(s, r);
            }
            Some(_) => {}
            None => {
                table.insert(s, r);
            }
        }
    }
    // (5C) Merge.
    for r in f.roots.clone() {
        let (s, _) = subject(f, r);
        let Some(&t) = table.get(&s) else { continue };
        if s.is_empty() || t == r {
            continue;
        }
        f.roots.retain(|&x| x != r);
        if f.is_dummy(t) && f.is_dummy(r) {
            for k in std::mem::take(&mut f.nodes[r].children) {
                f.link(t, k);
            }
        } else if f.is_dummy(t) || (is_reply(f, r) && !is_reply(f, t)) {
            f.link(t, r);
        } else {
            let d = f.add(None);
            if let Some(pos) = f.roots.iter().position(|&x| x == t) {
                f.roots[pos] = d;
            }
            f.link(d, t);
            f.link(d, r);
            table.insert(s, d);
        }
    }
}

/// RFC 5256 §4 `thread-list`s, e.g. `(2)(3 6 (4 23)(44 7 96))`.
fn format(f: &Forest, msgs: &[Msg], out: &mut String) {
    enum Op {
        Thread(usize),
        Members(usize),
        Close,
    }
    let mut stack: Vec<Op> = f.roots.iter().rev().map(|&r| Op::Thread(r)).collect();
    while let Some(op) = stack.pop() {
        match op {
            Op::Close => out.push(')'),
            Op::Thread(n) => {
                out.push('(');
                stack.push(Op::Close);
                stack.push(Op::Members(n));
            }
            Op::Members(n) => {
                let kids = f.children(n);
                let number = f.node(n).and_then(|c| c.msg).and_then(|m| msgs.get(m)).map(|m| m.number);
                if let Some(number) = number {
                    let _ = write!(out, "{number}");
                    if !kids.is_empty() {
                        out.push(' ');
                    }
                }
                match kids {
                    [only] if number.is_some() => stack.push(Op::Members(*only)),
                    _ => stack.extend(kids.iter().rev().map(|&k| Op::Thread(k))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
