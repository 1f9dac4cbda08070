"""Labels files: every accepted layout gives names in index order; every bad file a clear error."""
from __future__ import annotations

import json

import pytest

from model_zoo.labels import LabelsError, parse_labels


@pytest.mark.parametrize(
    "data, filename, expected",
    [
        (b"cat\ndog\nbird\n\n\n", "labels.txt", ["cat", "dog", "bird"]),
        (b"\xef\xbb\xbf  cat \r\ndog\r\n", "LABELS.TXT", ["cat", "dog"]),  # BOM, CRLF, spaces
        ("chat\nchien\n".encode("utf-16"), "fr.txt", ["chat", "chien"]),
        ("猫\n犬".encode(), "ja.txt", ["猫", "犬"]),
        # the widespread imagenet1000_clsidx_to_labels.txt is a Python dict literal
        (b"{0: 'tench, Tinca tinca',\n 1: 'goldfish, Carassius auratus'}", "i.txt",
         ["tench, Tinca tinca", "goldfish, Carassius auratus"]),
        (b'["cat", "dog"]', "l.json", ["cat", "dog"]),
        (b'{"1": "dog", "0": "cat"}', "l.json", ["cat", "dog"]),  # any key order
        (b'{"0": ["n02123045", "tabby"], "1": ["n02124075", "Egyptian_cat"]}', "imagenet_class_index.json",
         ["tabby", "Egyptian_cat"]),
        (b'{"id2label": {"0": "neg", "1": "pos"}, "model_type": "vit"}', "config.json", ["neg", "pos"]),
        (b"index,name\n0,cat\n1,dog\n", "l.csv", ["cat", "dog"]),
        (b"1,dog\n0,cat\n", "l.csv", ["cat", "dog"]),
        (b"0,tench, Tinca tinca\n1,goldfish\n", "l.csv", ["tench, Tinca tinca", "goldfish"]),
        (b'0,"tench, Tinca tinca"\n\n1,goldfish\n', "l.csv", ["tench, Tinca tinca", "goldfish"]),
        (b"idx,wnid,name\n0,n01440764,tench\n1,n01443537,goldfish\n", "l.csv", ["tench", "goldfish"]),
        (b"name\ncat\ndog\n", "l.csv", ["cat", "dog"]),
        (b"cat\ndog\n", "l.csv", ["cat", "dog"]),
        (b"tench, Tinca tinca\ngoldfish\n", "l.csv", ["tench, Tinca tinca", "goldfish"]),
    ],
)  # fmt: skip
def test_accepted_layouts(data, filename, expected):
    assert parse_labels(data, filename) == expected


def test_a_thousand_keras_style_labels_round_trip():
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    names = parse_labels(json.dumps(index).encode(), "imagenet_class_index.json")
    assert len(names) == 1000 and names[0] == "class_0" and names[999] == "class_999"


@pytest.mark.parametrize(
    "data, filename, words",
    [
        (b"cat", "labels.yaml", r"\.txt, \.json or \.csv"),
        (b"cat", "labels", "no extension"),
        (b"", "l.txt", "empty"),
        (b"  \n\n ", "l.csv", "empty"),
        (b"[]", "l.json", "no class names"),
        (b"caf\xe9\n", "l.txt", "not UTF-8"),
        (b"cat\x00dog", "l.txt", "binary"),
        (b"cat\n\ndog\n", "l.txt", "line 2 .* empty"),
        (b'{"0": "cat", "0": "dog"}', "l.json", "index 0 appears twice"),
        (b'{"0": "cat", "00": "dog"}', "l.json", "index 0 appears twice"),
        (b"0,cat\n0,dog\n", "l.csv", "index 0 appears twice"),
        (b'{"0": "cat", "2": "dog", "5": "cow"}', "l.json", "missing 1, 3, 4"),
        (b"1,cat\n2,dog\n", "l.csv", "missing 0"),
        (b'{"-1": "cat"}', "l.json", "negative"),
        (b'{"a": "cat"}', "l.json", "not a class index"),
        (b'["cat", null]', "l.json", "entry 1 .* not a class name"),
        (b'["cat", "  "]', "l.json", "empty class name"),
        (b'{"labels": 3}', "l.json", "not a class index"),
        (b'"cat"', "l.json", "list of names or an object"),
        (b"{not json", "l.json", "not valid JSON .*line 1"),
        (b"a\n" * (5 * 2**20 // 2 + 1), "big.txt", "limit is 5 MB"),
    ],
)
def test_bad_files_give_clear_errors(data, filename, words):
    with pytest.raises(LabelsError, match=words):
        parse_labels(data, filename)


def test_labels_error_is_a_value_error():
    assert issubclass(LabelsError, ValueError)


# ----------------------------------------------------------------------------- hostile files (issue 8)
@pytest.mark.parametrize("filename", ["deep.json", "deep.txt"])
@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 50_000, b"[" * 1000 + b"]" * 1000])
def test_deep_nesting_is_a_labels_error_not_a_recursion_error(data, filename):
    with pytest.raises(LabelsError) as info:
        parse_labels(data, filename)
    assert "Recursion" not in str(info.value)


def test_a_huge_class_index_is_refused_before_anything_is_built(monkeypatch):
    """{"0": "a", "20000000": "b"} took 13 s and 776 MB: the parser walked range(max + 1)."""
    import builtins

    from model_zoo import labels as mod

    real_range = builtins.range
    ranges = []

    def counting_range(*args):
        ranges.append(args)
        return real_range(*args)

    monkeypatch.setattr(mod, "range", counting_range, raising=False)  # the module's range only
    for data, filename in [(b'{"0": "a", "20000000": "b"}', "l.json"), (b"0,a\n20000000,b\n", "l.csv"),
                           (b"{0: 'a', 20000000: 'b'}", "l.txt")]:
        with pytest.raises(LabelsError, match=r"class index 20,000,000 is out of range; the limit is 100,000"):
            parse_labels(data, filename)
        with pytest.raises(LabelsError, match=r"class index 20,000,000 is out of range; the model has 10 classes"):
            parse_labels(data, filename, max_classes=10)
    assert ranges == []  # refused before any range was walked
    with pytest.raises(LabelsError, match="the model has 2 classes"):
        parse_labels(b'{"0": "a", "2": "b"}', "l.json", max_classes=2)
    with pytest.raises(LabelsError, match="names 3 classes; the model has 2 classes"):
        parse_labels(b'["a", "b", "c"]', "l.json", max_classes=2)
    with pytest.raises(LabelsError, match="names 3 classes; the model has 2 classes"):
        parse_labels(b"a\nb\nc\n", "l.txt", max_classes=2)
    assert parse_labels(b'["a", "b"]', "l.json", max_classes=2) == ["a", "b"]


def test_gaps_in_a_sparse_file_are_named_without_walking_every_index():
    with pytest.raises(LabelsError, match=r"run 0\.\.99999 without gaps; missing 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 …"):
        parse_labels(b'{"0": "a", "99999": "b"}', "l.json")


@pytest.mark.parametrize(
    "data, filename, message",
    [
        (b"", "l.txt", "empty"),
        (b"\xff\xfe\xfd\x80abc", "l.json", "not UTF-8"),  # ‘\xff\xfe’ reads as UTF-16: odd bytes
        (b"caf\xe9\nb\n", "l.txt", "not UTF-8"),  # Latin-1
        (b'[["a", ["b"]]]', "l.json", "entry 0 of the labels file is not a class name: list"),
        (b'[1e999999]', "l.json", None),  # inf as a name is a string "inf": accepted
    ],
)
def test_odd_files_get_a_message(data, filename, message):
    if message is None:
        assert parse_labels(data, filename) == ["inf"]
        return
    with pytest.raises(LabelsError, match=message):
        parse_labels(data, filename)


def test_imagenet_folder_names_resolve_to_their_class():
    """WordNet ids (ImageNet / Imagenette folders), synonyms with spaces or underscores and the
    display names all name a class; a synonym two classes share names none."""
    from model_zoo.imagenet import imagenet_aliases, imagenet_labels

    aliases, labels = imagenet_aliases(), imagenet_labels()
    assert labels[aliases["n02123045"]] == "tabby cat" and labels[aliases["n02123159"]] == "tiger cat"
    assert aliases["tabby"] == aliases["tabby_cat"] == aliases["tabby cat"] == 281
    assert aliases["n01440764"] == aliases["tench"] == 0 and aliases["great_white_shark"] == 2
    assert "crane" not in aliases and aliases["crane (bird)"] == 134 and aliases["n03126707"] == 517
    assert all(labels[i] for i in aliases.values()) and all(k == k.lower() for k in aliases)
