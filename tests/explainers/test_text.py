"""Escaping of user-controlled text before markdown and HTML."""
from explainers.text import count, escape_html, escape_markdown, markdown_to_text

HOSTILE = ["www.example.com me@example.org https://x.org", "<img src=http://127.0.0.1:9/track.png>", "[x](http://127.0.0.1:9/)", "![p](http://127.0.0.1:9/p.png)",
           "**bold** _it_ `code` $x^2$ :red[red] :smile:", "# heading\n- item", "a\\b", "tabby, tabby cat"]


def test_markdown_escape_leaves_no_active_syntax():
    z = "\u200b"  # breaks GFM's autolinks (bare URLs, www., e-mail) without changing the look
    assert escape_markdown("<img src=http://127.0.0.1:9/track.png>") == (
        f"\\<img src\\=http\\:{z}\\/\\/127\\.0\\.0\\.1\\:9\\/track\\.png\\>"
    )
    assert escape_markdown("[x](http://127.0.0.1:9/)") == f"\\[x\\]\\(http\\:{z}\\/\\/127\\.0\\.0\\.1\\:9\\/\\)"
    assert escape_markdown("www.example.com a@b.org") == f"www{z}\\.example\\.com a\\@{z}b\\.org"
    assert escape_markdown("# heading\n- item") == "\\# heading \\- item"  # one line: no blocks
    assert escape_markdown("猫 tabby") == "猫 tabby"
    for text in HOSTILE:
        escaped = escape_markdown(text)
        # every ASCII punctuation character is preceded by a backslash (CommonMark: literal)
        i = 0
        while i < len(escaped):
            if escaped[i] == "\\":
                i += 2
                continue
            assert escaped[i] not in "<>[]()!*_`$:#-\\", (text, escaped)
            i += 1


def test_round_trip_to_plain_text_and_html():
    for text in HOSTILE:
        flat = " ".join(text.split())
        assert markdown_to_text(escape_markdown(text)) == flat
        assert markdown_to_text(f"The model says **{escape_markdown(text)}**.") == f"The model says {flat}."
    assert escape_html("<img src='x'>") == "&lt;img src=&#x27;x&#x27;&gt;"


def test_count_puts_the_noun_in_the_right_number():
    assert count(1, "unusable file") == "1 unusable file"
    assert count(0, "unusable file") == "0 unusable files"
    assert count(3, "strategy", "strategies") == "3 strategies"
    assert count(1, "strategy", "strategies") == "1 strategy"
