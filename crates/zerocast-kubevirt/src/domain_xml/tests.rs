//! The rewrite over domain XML as KubeVirt's virt-launcher marshals it
//! (tab-indented, double quotes, explicit end tags) and over hostile input.

use super::*;

const VGA: &str = include_str!("../../testdata/kubevirt-vga.xml");
const BOCHS_HUGEPAGES: &str = include_str!("../../testdata/kubevirt-bochs-hugepages.xml");
const HEADLESS: &str = include_str!("../../testdata/kubevirt-headless.xml");
const MEMFD_SHARED: &str =
    "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>";

fn rewritten(xml: &str) -> Rewritten {
    rewrite(xml).expect("rewrite")
}

/// Replaces the one occurrence of `from` in `text`, so that expected outputs
/// are written as edits of the input: everything else must be identical.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replacen(from, to, 1)
}

/// What libvirt will see: one vhost-user virtio video, shared memfd memory, ACPI.
fn assert_zerocast_ready(xml: &str) {
    let doc = Document::parse(xml).expect("output parses");
    let domain = doc.root_element();
    let devices = children(domain, "devices").next().expect("devices");
    let videos: Vec<_> = children(devices, "video").collect();
    assert_eq!(videos.len(), 1, "one video device");
    assert!(is_vhost_user_virtio(videos[0]));
    let backing = children(domain, "memoryBacking")
        .next()
        .expect("memoryBacking");
    let source = children(backing, "source").next().expect("source");
    assert!(matches!(source.attribute("type"), Some("memfd" | "file")));
    let access = children(backing, "access").next().expect("access");
    assert_eq!(access.attribute("mode"), Some("shared"));
    let features = children(domain, "features").next().expect("features");
    assert!(children(features, "acpi").next().is_some());
}

#[test]
fn kubevirt_vga_domain_gets_the_vhost_user_video_and_memfd_memory() {
    let out = rewritten(VGA);
    let expected = edit(
        VGA,
        "<video>\n\t\t\t<model type=\"vga\" heads=\"1\" vram=\"16384\"></model>\n\t\t</video>",
        VHOST_USER_VIDEO,
    );
    let expected = edit(
        &expected,
        "<memory unit=\"b\">4294967296</memory>",
        &format!("<memory unit=\"b\">4294967296</memory>\n\t{MEMFD_SHARED}"),
    );
    assert_eq!(out.xml, expected);
    assert_eq!(
        out.changes,
        [
            Change::VideoReplaced {
                model: "vga".into()
            },
            Change::MemoryBackingAdded,
        ]
    );
    assert_zerocast_ready(&out.xml);
}

#[test]
fn hugepages_are_kept_and_memfd_shared_is_added_beside_them() {
    let out = rewritten(BOCHS_HUGEPAGES);
    let expected = edit(
        BOCHS_HUGEPAGES,
        "<video>\n\t\t\t<model type=\"bochs\" heads=\"1\"></model>\n\t\t</video>",
        VHOST_USER_VIDEO,
    );
    let expected = edit(
        &expected,
        "\t\t</hugepages>\n",
        "\t\t</hugepages>\n\t\t<source type='memfd'/><access mode='shared'/>\n",
    );
    let expected = edit(
        &expected,
        "\t\t<smm></smm>\n\t</features>",
        "\t\t<smm></smm>\n\t\t<acpi/>\n\t</features>",
    );
    assert_eq!(out.xml, expected);
    assert_eq!(
        out.changes,
        [
            Change::VideoReplaced {
                model: "bochs".into()
            },
            Change::MemorySourceSet { was: None },
            Change::MemoryAccessSet { was: None },
            Change::AcpiAdded,
        ]
    );
    assert_zerocast_ready(&out.xml);
}

#[test]
fn a_domain_without_video_or_features_gets_both() {
    let out = rewritten(HEADLESS);
    let expected = edit(
        HEADLESS,
        "\t\t</serial>\n\t</devices>",
        &format!("\t\t</serial>\n\t\t{VHOST_USER_VIDEO}\n\t</devices>"),
    );
    let expected = edit(
        &expected,
        "<memory unit=\"b\">2147483648</memory>",
        &format!("<memory unit=\"b\">2147483648</memory>\n\t{MEMFD_SHARED}"),
    );
    let expected = edit(
        &expected,
        "\t</qemu:commandline>\n</domain>",
        "\t</qemu:commandline>\n\t<features><acpi/></features>\n</domain>",
    );
    assert_eq!(out.xml, expected);
    assert!(
        out.xml.contains("string=a&amp;b"),
        "entities stay as written"
    );
    assert_eq!(
        out.changes,
        [
            Change::VideoAdded,
            Change::MemoryBackingAdded,
            Change::AcpiAdded
        ]
    );
    assert_zerocast_ready(&out.xml);
}

#[test]
fn rewriting_twice_is_rewriting_once() {
    let samples = [
        VGA,
        BOCHS_HUGEPAGES,
        HEADLESS,
        "<domain type='kvm'><name>bare</name></domain>",
        "<domain type='kvm'><memoryBacking/><features/><devices/></domain>",
    ];
    for xml in samples {
        let once = rewritten(xml);
        let twice = rewritten(&once.xml);
        assert_eq!(twice.xml, once.xml, "{xml}");
        assert!(twice.changes.is_empty(), "{:?}", twice.changes);
        assert_zerocast_ready(&once.xml);
    }
}

#[test]
fn a_ready_domain_is_returned_unchanged() {
    let xml = "<domain type='kvm'>\n  <memoryBacking>\n    <hugepages/>\n    \
               <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>\n  \
               <features><acpi/><apic/></features>\n  <devices>\n    <video>\n      \
               <driver name='vhostuser'/>\n      <model type='virtio' heads='2'/>\n    \
               </video>\n  </devices>\n</domain>\n";
    let out = rewritten(xml);
    assert_eq!(out.xml, xml);
    assert!(out.changes.is_empty());
}

#[test]
fn a_domain_with_nothing_but_a_name_gets_devices_memory_and_acpi() {
    let out = rewritten("<domain type='kvm'><name>bare</name></domain>");
    assert_eq!(
        out.xml,
        format!(
            "<domain type='kvm'><name>bare</name><devices>{VHOST_USER_VIDEO}</devices>\
             {MEMFD_SHARED}<features><acpi/></features></domain>"
        )
    );
    assert_eq!(
        out.changes,
        [
            Change::DevicesAdded,
            Change::VideoAdded,
            Change::MemoryBackingAdded,
            Change::AcpiAdded
        ]
    );
}

#[test]
fn empty_elements_are_opened_up() {
    let out =
        rewritten("<domain type='kvm'><memoryBacking/><features /><devices></devices></domain>");
    assert_eq!(
        out.xml,
        format!("<domain type='kvm'>{MEMFD_SHARED}<features><acpi/></features><devices>{VHOST_USER_VIDEO}</devices></domain>")
    );
}

#[test]
fn secondary_video_devices_are_removed_with_their_line() {
    let xml = "<domain type='kvm'>\n  <devices>\n    <disk type='file'/>\n    \
               <video><model type='vga'/></video>\n    \
               <video><model type='virtio' heads='1'/><alias name='ua-second'/></video>\n    \
               <video><model type='qxl'/></video>\n  </devices>\n</domain>";
    let out = rewritten(xml);
    let devices = "\n  <devices>\n    <disk type='file'/>\n    ";
    assert!(
        out.xml
            .contains(&format!("{devices}{VHOST_USER_VIDEO}\n  </devices>")),
        "{}",
        out.xml
    );
    assert_eq!(
        out.changes[..3],
        [
            Change::VideoReplaced {
                model: "vga".into()
            },
            Change::VideoRemoved {
                model: "virtio".into()
            },
            Change::VideoRemoved {
                model: "qxl".into()
            },
        ]
    );
}

#[test]
fn the_video_marked_primary_is_the_one_replaced() {
    let xml = "<domain><devices><video><model type='qxl'/></video>\
               <video><model type='vga' primary='yes'/></video></devices></domain>";
    let out = rewritten(xml);
    assert!(out
        .xml
        .contains(&format!("<devices>{VHOST_USER_VIDEO}</devices>")));
    assert_eq!(
        out.changes[..2],
        [
            Change::VideoRemoved {
                model: "qxl".into()
            },
            Change::VideoReplaced {
                model: "vga".into()
            },
        ]
    );
}

#[test]
fn memory_that_cannot_be_shared_is_made_shareable_and_file_memory_is_kept() {
    let xml = "<domain><memoryBacking><source type='anonymous'/><access mode='private'/>\
               <locked/></memoryBacking><features><acpi/></features>\
               <devices><video><driver name='vhostuser'/><model type='virtio'/></video></devices></domain>";
    let out = rewritten(xml);
    assert_eq!(
        out.xml,
        xml.replace("type='anonymous'", "type='memfd'")
            .replace("mode='private'", "mode='shared'")
    );
    assert_eq!(
        out.changes,
        [
            Change::MemorySourceSet {
                was: Some("anonymous".into())
            },
            Change::MemoryAccessSet {
                was: Some("private".into())
            },
        ]
    );

    let file = xml
        .replace("type='anonymous'", "type='file'")
        .replace("mode='private'", "mode='shared'");
    assert_eq!(rewritten(&file).xml, file);
}

#[test]
fn comments_namespaces_and_declarations_are_left_alone() {
    let xml = "<?xml version='1.0' encoding='UTF-8'?>\n<!-- <video> in a comment -->\n\
               <domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
               <name>a&amp;b &#x263A;</name><devices><!-- keep me --><qemu:video/><![CDATA[<video/>]]>\
               </devices><features><acpi/></features>\
               <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking></domain>\n";
    let out = rewritten(xml);
    assert_eq!(
        out.xml,
        // After the last element child, as on an indented line.
        edit(
            xml,
            "<qemu:video/>",
            &format!("<qemu:video/>{VHOST_USER_VIDEO}")
        )
    );
    assert_eq!(out.changes, [Change::VideoAdded]);
}

#[test]
fn what_is_not_a_domain_is_refused() {
    for (xml, found) in [
        ("<network><name>default</name></network>", "network"),
        (
            "<domain xmlns='http://example.com/not-libvirt'/>",
            "domain xmlns=\"http://example.com/not-libvirt\"",
        ),
        (
            "<domainsnapshot><domain type='kvm'/></domainsnapshot>",
            "domainsnapshot",
        ),
    ] {
        match rewrite(xml) {
            Err(RewriteError::NotADomain { found: f }) => assert_eq!(f, found),
            other => panic!("{xml}: {other:?}"),
        }
    }
    for xml in ["", "not xml", "<domain>", "<domain></devices>", "<a/><b/>"] {
        assert!(matches!(rewrite(xml), Err(RewriteError::Parse(_))), "{xml}");
    }
    let e = rewrite("<network/>").unwrap_err().to_string();
    assert_eq!(
        e,
        "not a libvirt domain: the root element is <network>, not <domain>"
    );
}

#[test]
fn a_dtd_and_its_entities_are_refused() {
    let laughs = "<?xml version='1.0'?>\n<!DOCTYPE domain [\n<!ENTITY a 'aaaaaaaaaa'>\n\
                  <!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>\n\
                  <!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>\n]>\n\
                  <domain><name>&c;</name></domain>";
    assert!(matches!(rewrite(laughs), Err(RewriteError::Parse(_))));
    let external = "<!DOCTYPE domain SYSTEM 'file:///etc/passwd'><domain/>";
    assert!(matches!(rewrite(external), Err(RewriteError::Parse(_))));
    let undefined = "<domain><name>&undefined;</name></domain>";
    assert!(matches!(rewrite(undefined), Err(RewriteError::Parse(_))));
}

#[test]
fn ambiguous_domains_are_refused() {
    for (xml, element) in [
        ("<domain><devices/><devices/></domain>", "devices"),
        (
            "<domain><memoryBacking/><memoryBacking/></domain>",
            "memoryBacking",
        ),
        ("<domain><features/><features/><devices/></domain>", "features"),
        (
            "<domain><memoryBacking><source type='file'/><source type='memfd'/></memoryBacking></domain>",
            "source",
        ),
    ] {
        match rewrite(xml) {
            Err(RewriteError::Duplicate { element: e, count }) => {
                assert_eq!((e.as_str(), count), (element, 2), "{xml}");
            }
            other => panic!("{xml}: {other:?}"),
        }
    }
}

#[test]
fn input_over_the_limit_is_refused_before_parsing() {
    let padding = " ".repeat(MAX_DOMAIN_XML);
    let xml = format!("<domain>{padding}</domain>");
    match rewrite(&xml) {
        Err(RewriteError::TooLarge { len, max }) => {
            assert_eq!((len, max), (xml.len(), MAX_DOMAIN_XML));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn deep_nesting_is_refused_before_the_recursive_parser_sees_it() {
    let nest = |depth: usize, tag: &str, end: &str| {
        format!(
            "<domain><metadata>{}{}</metadata></domain>",
            tag.repeat(depth),
            end.repeat(depth)
        )
    };
    // 50,000 levels overflowed a test thread's stack inside roxmltree.
    for xml in [
        nest(50_000, "<x>", "</x>"),
        nest(50_000, "<x a='/>'>", "</x>"),
        nest(50_000, "<x a=\"'/>\">", "</x>"),
        nest(50_000, "<x>", ""),
    ] {
        assert!(xml.len() < MAX_DOMAIN_XML);
        assert!(matches!(
            rewrite(&xml),
            Err(RewriteError::TooDeep { max: MAX_DEPTH })
        ));
    }
    // Within the limit (the domain and metadata are two levels), and with
    // what looks like tags where they are not, it is a domain like any other.
    let deep = nest(MAX_DEPTH - 2, "<x>", "</x>");
    assert_zerocast_ready(&rewritten(&deep).xml);
    let decoys = format!(
        "<domain><!--{0}--><![CDATA[{0}]]><?pi {0}?><metadata><x a='>/>'/></metadata>{1}</domain>",
        "<x>".repeat(1000),
        "<y/><z></z>".repeat(1000)
    );
    assert!(!nests_deeper_than(&decoys, 3));
    assert!(nests_deeper_than(&decoys.replace("<y/>", "<y>"), 3));
    assert_zerocast_ready(&rewritten(&decoys).xml);
}
