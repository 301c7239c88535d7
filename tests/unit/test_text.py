from powerops.core.text import looks_binary, printable


def test_printable_keeps_text_and_escapes_what_a_terminal_would_act_on() -> None:
    assert printable("Voltage, Global_intensity (é, °C)") == "Voltage, Global_intensity (é, °C)"
    assert printable("a\x00b\nc\x1b[2J\ufffd") == "a\\x00b\\nc\\x1b[2J\\ufffd"
    assert printable(b"\x1f\x8b\x08date") == "\\x1f\\x8b\\x08date"


def test_printable_bounds_its_output() -> None:
    assert printable("x" * 200) == "x" * 200
    assert printable("x" * 201) == "x" * 197 + "..."
    assert printable("\x00" * 100, limit=10) == "\\x00\\x0..."


def test_looks_binary_only_on_bytes_text_never_holds() -> None:
    assert not looks_binary("date_time;Voltage\r\n\t2008-01-01;240,5 é".encode())
    assert looks_binary(b"PAR1\x15\x04") and looks_binary(b"abc\x7f")
