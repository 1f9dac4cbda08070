"""The audit's findings in words: known answers on hand-made ``clusters.json`` contents."""
from __future__ import annotations

import numpy as np

from explainers.audit.aggregate import FLAGS, where_words
from explainers.audit.findings import class_words, findings


def group(gid: int, share: float, where: str, typical: list[str]) -> dict:
    return {"id": gid, "share": share, "where": where, "typical": typical, "mean_map": "x.png"}


def clusters(classes: dict, flags: dict, checked: dict, **extra) -> dict:
    return {"classes": classes, "flags": flags, "flags_checked": checked, "accuracy": None,
            "unmatched_true_labels": [], "images": sum(c["images"] for c in classes.values()), **extra}


HORSE = {"images": 10, "where": "the centre", "cluster_list": [
    group(0, 0.7, "the centre", ["h/1.png", "h/2.png", "h/3.png"]),
    group(1, 0.3, "the upper left", ["h/7.png", "h/8.png"])]}
CAT = {"images": 3, "where": "the lower part", "cluster_list": [group(0, 1.0, "the lower part", ["c/1.png"])]}


def test_where_words_name_the_hot_part_of_a_map() -> None:
    heat = np.zeros((16, 16))
    heat[1:4, 1:4] = 1.0
    heat[12, 12] = 0.3  # well below the peak: not part of "where"
    assert where_words(heat) == "the upper left"
    heat = np.zeros((16, 16))
    heat[6:10, 6:10] = 2.0
    assert where_words(heat) == "the centre"
    assert where_words(np.zeros((4, 4))) == "no particular area"


def test_where_words_follow_the_brightest_part_of_a_broad_map() -> None:
    """A mean map is broad: a wide plateau just above the "hot" level over the middle, the peak
    itself low in the picture. The plateau's extent is centred, yet the map is strongest low."""
    from explainers.audit.aggregate import HOT
    from explainers.summary import where

    heat = np.zeros((20, 20))
    heat[4:14, 4:16] = HOT + 0.05  # the plateau: rows 4–13, centred
    heat[14:19, 7:13] = 1.0  # the peak: rows 14–18
    assert where(heat >= HOT) == "the centre"  # the extent alone (the old wording)
    assert where_words(heat) == "the lower part"
    broad = np.full((20, 20), 0.55)  # a map over everything at about half its peak…
    broad[14:19, 7:13] = 1.0  # …with its bright part low: named by that part
    assert where_words(broad) == "the lower part"


def test_a_class_with_groups_looking_at_different_places_reads_as_a_possible_shortcut() -> None:
    text = class_words("horse", HORSE)
    assert text.startswith("horse (10 images): 2 different ways of looking")
    assert "group 1, 70% of them, mostly at the centre (e.g. h/1.png, h/2.png)" in text
    assert "group 2, 30% of them, mostly at the upper left (e.g. h/7.png, h/8.png)" in text
    assert "h/3.png" not in text  # two examples per group
    assert "shortcut" in text
    same = {**HORSE, "cluster_list": [group(0, 0.5, "the centre", ["a"]), group(1, 0.5, "the centre", ["b"])]}
    assert "shortcut" not in class_words("horse", same) and "differ in detail" in class_words("horse", same)
    assert class_words("cat", CAT) == "cat (3 images): one way of looking, mostly at the lower part."


def test_findings_count_flags_and_never_call_an_unchecked_flag_clean() -> None:
    c = clusters({"cat": CAT, "horse": HORSE},
                 flags={"misclassified": 1, "unfaithful": 0, "outside_mask": 0, "low_fit": 0},
                 checked={"misclassified": True, "unfaithful": True, "outside_mask": False, "low_fit": False},
                 accuracy=12 / 13, accuracy_images=13)
    lines = findings(c, errors=2)
    assert lines[0] == "13 images explained, predicted as 2 classes; 2 files could not be used (listed below)."
    assert lines[1].startswith("Accuracy against the folder labels: 92.3% of 13 images")
    assert lines[2].startswith("horse") and lines[3].startswith("cat")  # the class with groups first
    flagged = next(x for x in lines if x.startswith("Flagged"))
    assert f"1 image {FLAGS['misclassified'].finding} ({FLAGS['misclassified'].meaning})" in flagged
    assert "outside" not in flagged
    clean = next(x for x in lines if x.startswith("No image was flagged"))
    assert clean == "No image was flagged “unfaithful”."  # the mask and the fit were not measured
    missing = next(x for x in lines if x.startswith("Not checked"))
    assert FLAGS["outside_mask"].unchecked in missing and FLAGS["unfaithful"].unchecked not in missing


def test_findings_without_labels_say_how_to_get_accuracy() -> None:
    lines = findings(clusters({"cat": CAT}, flags={"misclassified": 0}, checked={"misclassified": False}))
    assert lines[0] == "3 images explained, predicted as 1 class."
    assert lines[1].startswith("Accuracy not measured: the images carry no labels")
    assert not any(x.startswith("No image was flagged") for x in lines)
    assert any(FLAGS["misclassified"].unchecked in x for x in lines)


def test_many_classes_are_counted_not_listed() -> None:
    many = {f"class {i}": {**CAT, "images": 20 - i} for i in range(11)}
    lines = findings(clusters(many, flags={}, checked={}))
    assert sum(x.startswith("class ") for x in lines) == 8
    assert "3 other classes: see the pictures per class." in lines
    assert any(x.startswith("class 0 (20 images)") for x in lines)  # the largest first


def test_plain_findings_leave_the_surrogate_fit_to_specialists() -> None:
    c = clusters({"cat": CAT}, flags={"misclassified": 0, "low_fit": 2},
                 checked={"misclassified": True, "low_fit": True}, accuracy=1.0, accuracy_images=3)
    assert any("2 images with a poorly fitting surrogate" in x for x in findings(c))
    plain = findings(c, plain=True)
    assert not any("surrogate" in x or "R²" in x for x in plain)
    assert "No image was flagged “wrong answer”." in plain  # the stakeholder's word for misclassified
    assert "No image was flagged “misclassified”." in findings(c)
    c["flags"]["low_fit"] = 0  # a clean fit is not news for anyone
    assert not any("low fit" in x for x in findings(c))


def test_accuracy_names_the_weakest_folders_first() -> None:
    per = {"ant": 1.0, "bee": 0.25, "cow": 0.5, "dog": 0.5, "elk": 0.9, "fox": 0.0, "gnu": 0.75}
    c = clusters({"cat": CAT}, flags={}, checked={}, accuracy=0.55, accuracy_images=70,
                 accuracy_per_class=per, accuracy_per_class_images={k: 10 for k in per})
    line = findings(c)[1]
    assert line == ("Accuracy against the folder labels: 55.0% of 70 images. By folder, lowest first: "
                    "fox 0% of 10, bee 25% of 10, "
                    "cow 50% of 10, dog 50% of 10, gnu 75% of 10; the other 2 folders do at least as well.")
    one = clusters({"cat": CAT}, flags={}, checked={}, accuracy=1.0, accuracy_images=3,
                   accuracy_per_class={"cat": 1.0}, accuracy_per_class_images={"cat": 3})
    assert findings(one)[1] == "Accuracy against the folder labels: 100.0% of 3 images."
