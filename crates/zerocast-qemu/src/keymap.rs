//! Linux evdev key codes -> QEMU key names (`QKeyCode`, "qcodes").
//!
//! The table is QEMU's own `linux -> qcode` mapping, taken from
//! keycodemapdb's `data/keymaps.csv` (the "Linux Keycode" and "QEMU
//! QKeyCode" columns; where a code has several rows the last one wins, as in
//! QEMU's generated table). Every name was checked against QEMU 10.0's
//! `QKeyCode` enum (`query-qmp-schema`). One deviation: `KEY_SYSRQ` is sent
//! as `print`, which QEMU turns `sysrq` into anyway.

/// `(evdev code, qcode)`, sorted by evdev code, each code once.
pub const QCODES: &[(u16, &str)] = &[
    (1, "esc"),               // KEY_ESC
    (2, "1"),                 // KEY_1
    (3, "2"),                 // KEY_2
    (4, "3"),                 // KEY_3
    (5, "4"),                 // KEY_4
    (6, "5"),                 // KEY_5
    (7, "6"),                 // KEY_6
    (8, "7"),                 // KEY_7
    (9, "8"),                 // KEY_8
    (10, "9"),                // KEY_9
    (11, "0"),                // KEY_0
    (12, "minus"),            // KEY_MINUS
    (13, "equal"),            // KEY_EQUAL
    (14, "backspace"),        // KEY_BACKSPACE
    (15, "tab"),              // KEY_TAB
    (16, "q"),                // KEY_Q
    (17, "w"),                // KEY_W
    (18, "e"),                // KEY_E
    (19, "r"),                // KEY_R
    (20, "t"),                // KEY_T
    (21, "y"),                // KEY_Y
    (22, "u"),                // KEY_U
    (23, "i"),                // KEY_I
    (24, "o"),                // KEY_O
    (25, "p"),                // KEY_P
    (26, "bracket_left"),     // KEY_LEFTBRACE
    (27, "bracket_right"),    // KEY_RIGHTBRACE
    (28, "ret"),              // KEY_ENTER
    (29, "ctrl"),             // KEY_LEFTCTRL
    (30, "a"),                // KEY_A
    (31, "s"),                // KEY_S
    (32, "d"),                // KEY_D
    (33, "f"),                // KEY_F
    (34, "g"),                // KEY_G
    (35, "h"),                // KEY_H
    (36, "j"),                // KEY_J
    (37, "k"),                // KEY_K
    (38, "l"),                // KEY_L
    (39, "semicolon"),        // KEY_SEMICOLON
    (40, "apostrophe"),       // KEY_APOSTROPHE
    (41, "grave_accent"),     // KEY_GRAVE
    (42, "shift"),            // KEY_LEFTSHIFT
    (43, "backslash"),        // KEY_BACKSLASH
    (44, "z"),                // KEY_Z
    (45, "x"),                // KEY_X
    (46, "c"),                // KEY_C
    (47, "v"),                // KEY_V
    (48, "b"),                // KEY_B
    (49, "n"),                // KEY_N
    (50, "m"),                // KEY_M
    (51, "comma"),            // KEY_COMMA
    (52, "dot"),              // KEY_DOT
    (53, "slash"),            // KEY_SLASH
    (54, "shift_r"),          // KEY_RIGHTSHIFT
    (55, "kp_multiply"),      // KEY_KPASTERISK
    (56, "alt"),              // KEY_LEFTALT
    (57, "spc"),              // KEY_SPACE
    (58, "caps_lock"),        // KEY_CAPSLOCK
    (59, "f1"),               // KEY_F1
    (60, "f2"),               // KEY_F2
    (61, "f3"),               // KEY_F3
    (62, "f4"),               // KEY_F4
    (63, "f5"),               // KEY_F5
    (64, "f6"),               // KEY_F6
    (65, "f7"),               // KEY_F7
    (66, "f8"),               // KEY_F8
    (67, "f9"),               // KEY_F9
    (68, "f10"),              // KEY_F10
    (69, "num_lock"),         // KEY_NUMLOCK
    (70, "scroll_lock"),      // KEY_SCROLLLOCK
    (71, "kp_7"),             // KEY_KP7
    (72, "kp_8"),             // KEY_KP8
    (73, "kp_9"),             // KEY_KP9
    (74, "kp_subtract"),      // KEY_KPMINUS
    (75, "kp_4"),             // KEY_KP4
    (76, "kp_5"),             // KEY_KP5
    (77, "kp_6"),             // KEY_KP6
    (78, "kp_add"),           // KEY_KPPLUS
    (79, "kp_1"),             // KEY_KP1
    (80, "kp_2"),             // KEY_KP2
    (81, "kp_3"),             // KEY_KP3
    (82, "kp_0"),             // KEY_KP0
    (83, "kp_decimal"),       // KEY_KPDOT
    (86, "less"),             // KEY_102ND
    (87, "f11"),              // KEY_F11
    (88, "f12"),              // KEY_F12
    (89, "ro"),               // KEY_RO
    (91, "hiragana"),         // KEY_HIRAGANA
    (92, "henkan"),           // KEY_HENKAN
    (93, "katakanahiragana"), // KEY_KATAKANAHIRAGANA
    (94, "muhenkan"),         // KEY_MUHENKAN
    (96, "kp_enter"),         // KEY_KPENTER
    (97, "ctrl_r"),           // KEY_RIGHTCTRL
    (98, "kp_divide"),        // KEY_KPSLASH
    (99, "print"),            // KEY_SYSRQ
    (100, "alt_r"),           // KEY_RIGHTALT
    (101, "lf"),              // KEY_LINEFEED
    (102, "home"),            // KEY_HOME
    (103, "up"),              // KEY_UP
    (104, "pgup"),            // KEY_PAGEUP
    (105, "left"),            // KEY_LEFT
    (106, "right"),           // KEY_RIGHT
    (107, "end"),             // KEY_END
    (108, "down"),            // KEY_DOWN
    (109, "pgdn"),            // KEY_PAGEDOWN
    (110, "insert"),          // KEY_INSERT
    (111, "delete"),          // KEY_DELETE
    (113, "audiomute"),       // KEY_MUTE
    (114, "volumedown"),      // KEY_VOLUMEDOWN
    (115, "volumeup"),        // KEY_VOLUMEUP
    (116, "power"),           // KEY_POWER
    (117, "kp_equals"),       // KEY_KPEQUAL
    (119, "pause"),           // KEY_PAUSE
    (121, "kp_comma"),        // KEY_KPCOMMA
    (122, "lang1"),           // KEY_HANGEUL
    (123, "lang2"),           // KEY_HANJA
    (124, "yen"),             // KEY_YEN
    (125, "meta_l"),          // KEY_LEFTMETA
    (126, "meta_r"),          // KEY_RIGHTMETA
    (127, "compose"),         // KEY_COMPOSE
    (128, "stop"),            // KEY_STOP
    (129, "again"),           // KEY_AGAIN
    (130, "props"),           // KEY_PROPS
    (131, "undo"),            // KEY_UNDO
    (132, "front"),           // KEY_FRONT
    (133, "copy"),            // KEY_COPY
    (134, "open"),            // KEY_OPEN
    (135, "paste"),           // KEY_PASTE
    (136, "find"),            // KEY_FIND
    (137, "cut"),             // KEY_CUT
    (138, "help"),            // KEY_HELP
    (139, "menu"),            // KEY_MENU
    (140, "calculator"),      // KEY_CALC
    (142, "sleep"),           // KEY_SLEEP
    (143, "wake"),            // KEY_WAKEUP
    (155, "mail"),            // KEY_MAIL
    (156, "ac_bookmarks"),    // KEY_BOOKMARKS
    (157, "computer"),        // KEY_COMPUTER
    (158, "ac_back"),         // KEY_BACK
    (159, "ac_forward"),      // KEY_FORWARD
    (163, "audionext"),       // KEY_NEXTSONG
    (164, "audioplay"),       // KEY_PLAYPAUSE
    (165, "audioprev"),       // KEY_PREVIOUSSONG
    (166, "audiostop"),       // KEY_STOPCD
    (172, "ac_home"),         // KEY_HOMEPAGE
    (173, "ac_refresh"),      // KEY_REFRESH
    (183, "f13"),             // KEY_F13
    (184, "f14"),             // KEY_F14
    (185, "f15"),             // KEY_F15
    (186, "f16"),             // KEY_F16
    (187, "f17"),             // KEY_F17
    (188, "f18"),             // KEY_F18
    (189, "f19"),             // KEY_F19
    (190, "f20"),             // KEY_F20
    (191, "f21"),             // KEY_F21
    (192, "f22"),             // KEY_F22
    (193, "f23"),             // KEY_F23
    (194, "f24"),             // KEY_F24
    (226, "mediaselect"),     // KEY_MEDIA
];

/// The QEMU qcode for a Linux evdev key code, if QEMU has one.
pub fn qcode(evdev: u16) -> Option<&'static str> {
    QCODES
        .binary_search_by_key(&evdev, |&(code, _)| code)
        .ok()
        .map(|i| QCODES[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(QCODES.windows(2).all(|w| w[0].0 < w[1].0));
        let mut names: Vec<&str> = QCODES.iter().map(|&(_, q)| q).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), QCODES.len(), "two evdev codes share a qcode");
    }

    #[test]
    fn a_pc_keyboard_is_covered() {
        // KEY_A..KEY_Z are not contiguous in evdev: check by name.
        for (code, name) in [(30, "a"), (48, "b"), (44, "z"), (16, "q"), (50, "m")] {
            assert_eq!(qcode(code), Some(name));
        }
        // Digits 1..9, 0.
        for code in 2..=11 {
            assert!(qcode(code).is_some(), "digit key {code}");
        }
        // F1-F10 (59..=68), F11, F12.
        for code in (59..=68).chain([87, 88]) {
            assert!(qcode(code).unwrap().starts_with('f'), "F key {code}");
        }
        // Modifiers, arrows, navigation.
        let expected = [
            (1, "esc"),
            (14, "backspace"),
            (15, "tab"),
            (28, "ret"),
            (29, "ctrl"),
            (97, "ctrl_r"),
            (42, "shift"),
            (54, "shift_r"),
            (56, "alt"),
            (100, "alt_r"),
            (125, "meta_l"),
            (126, "meta_r"),
            (57, "spc"),
            (58, "caps_lock"),
            (103, "up"),
            (105, "left"),
            (106, "right"),
            (108, "down"),
            (102, "home"),
            (107, "end"),
            (104, "pgup"),
            (109, "pgdn"),
            (110, "insert"),
            (111, "delete"),
            (99, "print"),
            (119, "pause"),
            (127, "compose"),
            (139, "menu"),
        ];
        for (code, name) in expected {
            assert_eq!(qcode(code), Some(name), "evdev {code}");
        }
        // Punctuation.
        for code in [12, 13, 26, 27, 39, 40, 41, 43, 51, 52, 53, 86] {
            assert!(qcode(code).is_some(), "punctuation key {code}");
        }
        // The keypad: digits, operators, enter, decimal, num lock.
        for code in (71..=83).chain([55, 69, 96, 98]) {
            assert!(qcode(code).unwrap().starts_with("kp_") || code == 69);
        }
    }

    #[test]
    fn unknown_codes_have_no_qcode() {
        for code in [0, 84, 240, 0x110, 0x2FF, u16::MAX] {
            assert_eq!(qcode(code), None, "evdev {code}");
        }
    }
}
