//! The domain XML rewrite that gives a KubeVirt VM zerocast's GPU.
//!
//! KubeVirt hands a hook the libvirt domain it is about to define; this
//! returns the same text with three things made true, and nothing else
//! touched: edits are spliced into the original string at the byte ranges
//! the parser reports, so attribute quoting, indentation, comments, entities
//! and namespaced elements (`qemu:commandline`) stay exactly as they were.
//!
//! 1. The primary video device is
//!    `<video><driver name='vhostuser'/><model type='virtio' heads='1'/></video>`,
//!    which libvirt turns into QEMU's `vhost-user-vga` backed by the program
//!    its vhost-user descriptor names (zerocast's). The primary is the video
//!    whose model says `primary='yes'`, else the first. A primary that is
//!    already vhost-user virtio is left as it is; any other is replaced in
//!    place (its `<model>` settings, `<address>` and `<alias>` go: libvirt
//!    assigns an address). Every other video device is removed: zerocast
//!    streams the primary, and a leftover `vga` or `bochs` would be a second
//!    VGA-class device, which libvirt refuses.
//! 2. Guest RAM is shared memfd memory, so the backend can map the guest's
//!    framebuffers: `<memoryBacking>` gets `<source type='memfd'/>` and
//!    `<access mode='shared'/>`. An existing `<memoryBacking>` keeps
//!    everything else (hugepages, locked, nosharepages, allocation,
//!    discard): memfd works with hugepages (QEMU's `memory-backend-memfd`
//!    with `hugetlb`). A `file` source is kept too: with shared access it is
//!    a shareable fd just the same. An `anonymous` source becomes memfd and
//!    `private` access becomes shared, since neither can be mapped by another
//!    process.
//! 3. `<features>` has `<acpi/>`: libvirt 9.0 passes `-no-acpi` without it,
//!    which QEMU 10 refuses.
//!
//! Running it again on its own output changes nothing. Input that is not a
//! libvirt domain, has a DTD (a domain never needs one; entity expansion is
//! how XML bombs work), is over [`MAX_DOMAIN_XML`] bytes, or is ambiguous
//! (two `<devices>`) is refused with the reason.

use std::fmt;
use std::ops::Range;

use roxmltree::{Document, Node, ParsingOptions};

/// The largest domain XML accepted. KubeVirt's are a few KiB to a few tens
/// (one `<disk>` is about 400 bytes); the sidecar-shim passes the XML as one
/// argument, which Linux caps at 128 KiB anyway.
pub const MAX_DOMAIN_XML: usize = 1 << 20;

/// The deepest element nesting accepted. roxmltree parses elements
/// recursively, so a few tens of thousands of levels would overflow the
/// stack; libvirt's own parser (libxml2) stops at 256 levels anyway, and a
/// domain needs fewer than ten.
pub const MAX_DEPTH: usize = 256;

/// The video device this rewrite makes primary.
pub const VHOST_USER_VIDEO: &str =
    "<video><driver name='vhostuser'/><model type='virtio' heads='1'/></video>";
const MEMFD_SOURCE: &str = "<source type='memfd'/>";
const SHARED_ACCESS: &str = "<access mode='shared'/>";
const ACPI: &str = "<acpi/>";

/// Why a domain XML was refused.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("the domain XML is {len} bytes, over the {max} bytes accepted; refusing it")]
    TooLarge { len: usize, max: usize },
    #[error("the domain XML nests elements more than {max} deep; refusing it")]
    TooDeep { max: usize },
    #[error(
        "the domain XML cannot be read (a libvirt domain is well-formed XML without a DTD): {0}"
    )]
    Parse(#[from] roxmltree::Error),
    #[error("not a libvirt domain: the root element is <{found}>, not <domain>")]
    NotADomain { found: String },
    #[error("the domain has {count} <{element}> elements where libvirt allows one; refusing to guess which to change")]
    Duplicate { element: String, count: usize },
}

/// One thing the rewrite changed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The domain had no `<devices>`; one was added for the video device.
    DevicesAdded,
    /// There was no video device; the vhost-user one was added.
    VideoAdded,
    /// The primary video device (of this model type) became the vhost-user one.
    VideoReplaced { model: String },
    /// A video device other than the primary was removed.
    VideoRemoved { model: String },
    /// There was no `<memoryBacking>`; a shared memfd one was added.
    MemoryBackingAdded,
    /// `<memoryBacking>`'s source became memfd (it was this type, or absent).
    MemorySourceSet { was: Option<String> },
    /// `<memoryBacking>`'s access became shared (it was this mode, or absent).
    MemoryAccessSet { was: Option<String> },
    /// `<acpi/>` was added to `<features>` (made if absent).
    AcpiAdded,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        match self {
            Self::DevicesAdded => f.write_str("added <devices>"),
            Self::VideoAdded => f.write_str("added the vhost-user video device"),
            Self::VideoReplaced { model } => {
                write!(
                    f,
                    "replaced the primary video ({model}) with the vhost-user one"
                )
            }
            Self::VideoRemoved { model } => write!(f, "removed a secondary video ({model})"),
            Self::MemoryBackingAdded => f.write_str("added shared memfd <memoryBacking>"),
            Self::MemorySourceSet { was } => {
                write!(f, "memory source set to memfd (was {})", or_none(was))
            }
            Self::MemoryAccessSet { was } => {
                write!(f, "memory access set to shared (was {})", or_none(was))
            }
            Self::AcpiAdded => f.write_str("added <acpi/> to <features>"),
        }
    }
}

/// A rewritten domain and what changed in it (empty: the text is the input).
#[derive(Debug)]
pub struct Rewritten {
    pub xml: String,
    pub changes: Vec<Change>,
}

/// Rewrites a libvirt domain XML for zerocast's vhost-user GPU (see the
/// module documentation for exactly what changes).
pub fn rewrite(xml: &str) -> Result<Rewritten, RewriteError> {
    if xml.len() > MAX_DOMAIN_XML {
        return Err(RewriteError::TooLarge {
            len: xml.len(),
            max: MAX_DOMAIN_XML,
        });
    }
    if nests_deeper_than(xml, MAX_DEPTH) {
        return Err(RewriteError::TooDeep { max: MAX_DEPTH });
    }
    let options = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(xml, options)?;
    let domain = doc.root_element();
    if domain.tag_name().name() != "domain" || domain.tag_name().namespace().is_some() {
        let tag = domain.tag_name();
        let found = match tag.namespace() {
            Some(ns) => format!("{} xmlns=\"{ns}\"", tag.name()),
            None => tag.name().to_owned(),
        };
        return Err(RewriteError::NotADomain { found });
    }

    let mut edits = Edits::new(xml);
    let mut changes = Vec::new();
    video(domain, &mut edits, &mut changes)?;
    memory_backing(domain, &mut edits, &mut changes)?;
    acpi(domain, &mut edits, &mut changes)?;
    Ok(Rewritten {
        xml: edits.apply(),
        changes,
    })
}

fn video<'a>(
    domain: Node<'a, 'a>,
    edits: &mut Edits<'a>,
    changes: &mut Vec<Change>,
) -> Result<(), RewriteError> {
    let Some(devices) = only_child(domain, "devices")? else {
        edits.append_child(domain, &format!("<devices>{VHOST_USER_VIDEO}</devices>"));
        changes.extend([Change::DevicesAdded, Change::VideoAdded]);
        return Ok(());
    };
    let videos: Vec<_> = children(devices, "video").collect();
    if videos.is_empty() {
        edits.append_child(devices, VHOST_USER_VIDEO);
        changes.push(Change::VideoAdded);
        return Ok(());
    }
    let model_type = |v: Node| {
        video_model(v)
            .and_then(|m| m.attribute("type"))
            .unwrap_or("no model")
            .to_owned()
    };
    let primary = videos
        .iter()
        .position(|&v| video_model(v).and_then(|m| m.attribute("primary")) == Some("yes"))
        .unwrap_or(0);
    for (i, &v) in videos.iter().enumerate() {
        if i != primary {
            edits.remove(v);
            changes.push(Change::VideoRemoved {
                model: model_type(v),
            });
        } else if !is_vhost_user_virtio(v) {
            edits.replace(v, VHOST_USER_VIDEO);
            changes.push(Change::VideoReplaced {
                model: model_type(v),
            });
        }
    }
    Ok(())
}

fn video_model<'a, 'i>(video: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    children(video, "model").next()
}

fn is_vhost_user_virtio(video: Node) -> bool {
    let driver = children(video, "driver").next();
    let model = video_model(video);
    driver.and_then(|d| d.attribute("name")) == Some("vhostuser")
        && model.and_then(|m| m.attribute("type")) == Some("virtio")
}

fn memory_backing<'a>(
    domain: Node<'a, 'a>,
    edits: &mut Edits<'a>,
    changes: &mut Vec<Change>,
) -> Result<(), RewriteError> {
    let Some(backing) = only_child(domain, "memoryBacking")? else {
        let text = format!("<memoryBacking>{MEMFD_SOURCE}{SHARED_ACCESS}</memoryBacking>");
        // Beside the memory sizes, where a reader looks for it.
        let last_size = domain.children().rfind(|n| {
            is_element(*n)
                && ["memory", "currentMemory", "maxMemory"].contains(&n.tag_name().name())
        });
        match last_size {
            Some(last) => edits.insert_after(last, &text),
            None => edits.append_child(domain, &text),
        }
        changes.push(Change::MemoryBackingAdded);
        return Ok(());
    };
    let mut missing = String::new();
    match only_child(backing, "source")? {
        None => {
            missing.push_str(MEMFD_SOURCE);
            changes.push(Change::MemorySourceSet { was: None });
        }
        Some(s) if matches!(s.attribute("type"), Some("memfd" | "file")) => {}
        Some(s) => {
            edits.replace(s, MEMFD_SOURCE);
            changes.push(Change::MemorySourceSet {
                was: s.attribute("type").map(str::to_owned),
            });
        }
    }
    match only_child(backing, "access")? {
        None => {
            missing.push_str(SHARED_ACCESS);
            changes.push(Change::MemoryAccessSet { was: None });
        }
        Some(a) if a.attribute("mode") == Some("shared") => {}
        Some(a) => {
            edits.replace(a, SHARED_ACCESS);
            changes.push(Change::MemoryAccessSet {
                was: a.attribute("mode").map(str::to_owned),
            });
        }
    }
    if !missing.is_empty() {
        edits.append_child(backing, &missing);
    }
    Ok(())
}

fn acpi<'a>(
    domain: Node<'a, 'a>,
    edits: &mut Edits<'a>,
    changes: &mut Vec<Change>,
) -> Result<(), RewriteError> {
    match only_child(domain, "features")? {
        None => edits.append_child(domain, &format!("<features>{ACPI}</features>")),
        Some(f) if children(f, "acpi").next().is_some() => return Ok(()),
        Some(f) => edits.append_child(f, ACPI),
    }
    changes.push(Change::AcpiAdded);
    Ok(())
}

/// Elements of libvirt's (empty) namespace only: `qemu:commandline` and
/// metadata in other namespaces are never what this looks for.
fn is_element(n: Node) -> bool {
    n.is_element() && n.tag_name().namespace().is_none()
}

fn children<'a, 'i>(
    parent: Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    parent
        .children()
        .filter(move |n| is_element(*n) && n.tag_name().name() == name)
}

fn only_child<'a, 'i>(
    parent: Node<'a, 'i>,
    name: &'static str,
) -> Result<Option<Node<'a, 'i>>, RewriteError> {
    let mut found = children(parent, name);
    let first = found.next();
    let more = found.count();
    if more > 0 {
        return Err(RewriteError::Duplicate {
            element: name.to_owned(),
            count: more + 1,
        });
    }
    Ok(first)
}

/// Text replacements at byte ranges of the original, applied in one pass.
struct Edits<'a> {
    text: &'a str,
    // Non-overlapping by construction: each element is replaced or removed at
    // most once, and insertions land at element ends or before end tags.
    edits: Vec<(Range<usize>, String)>,
}

impl<'a> Edits<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            edits: Vec::new(),
        }
    }

    fn replace(&mut self, node: Node, with: &str) {
        self.edits.push((node.range(), with.to_owned()));
    }

    /// Removes an element with the indentation before it, leaving no blank line.
    fn remove(&mut self, node: Node) {
        let start = match node.prev_sibling() {
            Some(p) if is_blank(p) => p.range().start,
            _ => node.range().start,
        };
        self.edits.push((start..node.range().end, String::new()));
    }

    /// Inserts `what` after `sibling`, on a line of its own when `sibling` is.
    fn insert_after(&mut self, sibling: Node, what: &str) {
        let indent = match sibling.prev_sibling() {
            Some(p) if is_blank(p) => &self.text[p.range()],
            _ => "",
        };
        let at = sibling.range().end;
        self.edits.push((at..at, format!("{indent}{what}")));
    }

    /// Inserts `what` as the last element child of `parent`.
    fn append_child(&mut self, parent: Node, what: &str) {
        if let Some(last) = parent.children().rfind(Node::is_element) {
            return self.insert_after(last, what);
        }
        let range = parent.range();
        let whole = &self.text[range.clone()];
        match whole.strip_suffix("/>") {
            // `<features/>`: opened up around the new child.
            Some(open) => {
                let name = parent.tag_name().name();
                let with = format!("{}>{what}</{name}>", open.trim_end());
                self.edits.push((range, with));
            }
            None => {
                let at = range.start + whole.rfind("</").unwrap_or(whole.len());
                self.edits.push((at..at, what.to_owned()));
            }
        }
    }

    fn apply(mut self) -> String {
        // Stable: insertions at one place keep the order they were made in.
        self.edits.sort_by_key(|(r, _)| r.start);
        let mut out = String::with_capacity(self.text.len() + 256);
        let mut at = 0;
        for (range, with) in &self.edits {
            out.push_str(&self.text[at..range.start]);
            out.push_str(with);
            at = range.end;
        }
        out.push_str(&self.text[at..]);
        out
    }
}

/// Whether elements in `xml` nest deeper than `max`, found without
/// recursion: start tags (read past quoted attribute values) count up, end
/// tags down; comments, CDATA sections, processing instructions and
/// declarations are skipped. Exact for well-formed XML, and for anything else
/// at least as deep as the parser gets before it finds the error.
fn nests_deeper_than(xml: &str, max: usize) -> bool {
    let b = xml.as_bytes();
    let find = |from: usize, what: &[u8]| {
        b[from..]
            .windows(what.len())
            .position(|w| w == what)
            .map_or(b.len(), |p| from + p + what.len())
    };
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'<') {
        let at = i + p;
        let rest = &b[at..];
        i = if rest.starts_with(b"<!--") {
            find(at, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            find(at, b"]]>")
        } else if rest.starts_with(b"<?") {
            find(at, b"?>")
        } else if rest.starts_with(b"</") || rest.starts_with(b"<!") {
            if rest[1] == b'/' {
                depth = depth.saturating_sub(1);
            }
            find(at, b">")
        } else {
            let mut quote = None;
            let mut end = b.len();
            for (j, &c) in b.iter().enumerate().skip(at + 1) {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'>' => {
                        end = j + 1;
                        break;
                    }
                    None => {}
                }
            }
            if b[..end].ends_with(b"/>") && quote.is_none() {
                // Self-closing: no deeper.
            } else {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            end
        };
    }
    false
}

fn is_blank(n: Node) -> bool {
    n.is_text() && n.text().is_some_and(|t| t.trim().is_empty())
}

#[cfg(test)]
mod tests;
