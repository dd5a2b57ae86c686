import pytest

from construct.raw.registers import Layout, Register


def test_labels_name_every_row():
    layout = Layout([Register("err", (1,)), Register("x", (3,)), Register("Ainv", (2, 2))])
    assert layout.labels == ("err", "x[0]", "x[1]", "x[2]", "Ainv[0,0]", "Ainv[0,1]", "Ainv[1,0]", "Ainv[1,1]")
    assert layout.width == 8
    assert layout.span("x") == (1, 4)
    assert layout.paper("Ainv") == "[4, 8)"


def test_explicit_starts_leave_gaps_labelled():
    layout = Layout([Register("a", (2,)), Register("b", (1,))], starts={"b": 4})
    assert layout.labels == ("a[0]", "a[1]", "(unused)", "(unused)", "b")


def test_overlap_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"'a' rows \[0, 3\) and 'b' rows \[2, 4\) overlap"):
        Layout([Register("a", (3,)), Register("b", (2,))], starts={"b": 2})


def test_duplicate_is_refused():
    with pytest.raises(ValueError, match="'x' is placed twice"):
        Layout([Register("x", (1,)), Register("x", (2,))])


def test_unknown_name_is_refused_naming_it():
    layout = Layout([Register("x", (2,))])
    with pytest.raises(KeyError, match="'w' is not in the layout"):
        layout.rows("w")
    with pytest.raises(ValueError, match="unknown registers: \\['q'\\]"):
        Layout([Register("x", (2,))], starts={"q": 3})


@pytest.mark.parametrize("name, shape", [("", (1,)), ("a b", (1,)), ("x[0]", (1,)), ("x", (0,)), ("x", (2.0,)), ("x", ())])
def test_bad_registers(name, shape):
    with pytest.raises(ValueError, match="register"):
        Register(name, shape)


def test_extended_stacks_after_last_row():
    layout = Layout([Register("a", (2,))], starts={"a": 3}).extended([Register("b", (1,))])
    assert layout.span("b") == (5, 6)
