"""Renderer: PIL text rendering (strip and wrap), patch counts, truncation, seeded augmentation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from contrastkit.data.render import Augment, Renderer, default_font_path, normalize_text

ALL_ON = Augment(p_font_size=1.0, p_offset=1.0, p_rotate=1.0, p_blur=1.0, p_noise=1.0)


def test_strip_is_black_text_on_white_uint8_of_the_configured_shape():
    image = Renderer().render("The cat sat on the mat.")
    assert image.shape == (16, 1024) and image.dtype == np.uint8
    assert image.mean() > 200 and image.min() < 50 and image.max() == 255
    small = Renderer(height=24, width=480, patch_size=24).render("The cat sat on the mat.")
    assert small.shape == (24, 480)
    assert Renderer().max_patches == 64 and Renderer().grid == (1, 64)


def test_patch_count_is_text_patches_plus_end_patch_and_matches_the_ink():
    r = Renderer()
    for text in ["a", "hello world", "A longer sentence with quite a few more words in it."]:
        image, count = r.render(text), r.patch_count(text)
        ink = np.nonzero(image.min(axis=0) < 128)[0]
        assert count == ink.max() // 16 + 2  # last inked patch, then the end patch
        assert (image[:, count * 16 :] == 255).all()


def test_longer_text_more_patches_and_empty_text_is_one_blank_patch():
    r = Renderer()
    counts = [r.patch_count(" ".join(["word"] * k)) for k in (1, 3, 6, 12)]
    assert counts == sorted(counts) and len(set(counts)) == 4
    blank = r.render("")
    assert (blank == 255).all() and r.patch_count("") == 1
    images, batch_counts = r.render_batch([])
    assert images.shape == (0, 16, 1024) and batch_counts.shape == (0,)


def test_text_past_the_last_patch_is_truncated_at_a_character():
    r = Renderer(width=160)  # 10 patches
    long = "abcdefghij " * 40
    image = r.render(long)
    assert r.patch_count(long) == 10
    assert (image[:, 9 * 16 :] == 255).all()  # the end patch stays blank
    assert image[:, : 9 * 16].min() < 50
    # the same image as some prefix of the text: whole characters, no glyph cut in half
    assert any(np.array_equal(image, r.render(long[:k])) for k in range(1, 40))


def test_spaces_around_punctuation_are_normalised():
    assert normalize_text("  a , b ( c ) d .\te !  ") == "a, b (c) d. e!"
    r = Renderer()
    assert np.array_equal(r.render("the cat , the dog ."), r.render("the cat, the dog."))
    raw = Renderer(normalize_spaces=False)
    assert not np.array_equal(raw.render("the cat , the dog ."), raw.render("the cat, the dog."))


def test_wrap_mode_puts_words_on_several_lines_within_the_canvas():
    r = Renderer(mode="wrap", height=64, width=64)
    text = "the quick brown fox jumps"
    image = r.render(text)
    assert image.shape == (64, 64) and r.grid == (4, 4)
    rows_with_ink = [int((image[i * 16 : (i + 1) * 16] < 128).any()) for i in range(4)]
    assert rows_with_ink[:3] == [1, 1, 1]
    count = r.patch_count(text)
    assert 9 <= count <= 16
    overflow = r.render("word " * 200)
    assert all((overflow[i * 16 : (i + 1) * 16] < 128).any() for i in range(4))  # lines past the bottom dropped
    assert r.patch_count("word " * 200) >= 14
    assert r.render("supercalifragilisticexpialidocious").min() < 128  # a long word is broken, not lost


def test_augmentation_is_seeded_changes_pixels_and_keeps_the_shape():
    r = Renderer(augment=ALL_ON)
    text = "seeded views of one sentence"
    a = r.render(text, generator=np.random.default_rng(0))
    b = r.render(text, generator=np.random.default_rng(0))
    c = r.render(text, generator=np.random.default_rng(1))
    clean = r.render(text)
    assert np.array_equal(a, b)
    assert a.shape == clean.shape == (16, 1024) and a.dtype == np.uint8
    assert not np.array_equal(a, c) and not np.array_equal(a, clean)
    # each augmentation alone changes the image
    for name in ("p_font_size", "p_offset", "p_rotate", "p_blur", "p_noise"):
        one = Renderer(augment=Augment(**{name: 1.0}))
        views = {one.render(text, generator=np.random.default_rng(s)).tobytes() for s in range(4)}
        assert len(views | {clean.tobytes()}) > 1, name


def test_augment_off_by_default_and_generator_alone_changes_nothing():
    r = Renderer()
    assert not r.augment.enabled and ALL_ON.enabled
    assert np.array_equal(r.render("x y z", generator=np.random.default_rng(3)), r.render("x y z"))


def test_render_batch_draws_one_generator_in_order():
    r = Renderer(augment=ALL_ON)
    texts = ["one", "two words", "three little words"]
    images, counts = r.render_batch(texts, np.random.default_rng(5))
    g = np.random.default_rng(5)
    for image, count, text in zip(images, counts, texts, strict=True):
        g_state = g.bit_generator.state
        assert np.array_equal(image, r.render(text, generator=g))
        g.bit_generator.state = g_state
        assert count == r.patch_count(text, generator=g)
    assert counts.dtype == np.int64


def test_config_round_trip_and_errors():
    r = Renderer(mode="wrap", height=32, width=48, font_size=10, augment=Augment(p_blur=0.5, blur_sigma=(0.1, 0.2)))
    assert Renderer.from_dict(r.to_dict()) == r
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        Renderer.from_dict({**r.to_dict(), "colour": "red"})
    with pytest.raises(ValueError, match=r"height .* must equal patch_size"):
        Renderer(height=32)
    with pytest.raises(ValueError, match=r"multiples of patch_size"):
        Renderer(width=1000)
    with pytest.raises(ValueError, match=r"Augment.p_noise"):
        Augment(p_noise=1.5)
    with pytest.raises(ValueError, match=r"blur_sigma"):
        Augment(blur_sigma=(2.0, 1.0))
    with pytest.raises(TypeError, match=r"expected a str"):
        Renderer().render(3)  # type: ignore[arg-type]


def test_missing_font_files_are_named(tmp_path, monkeypatch):
    missing = tmp_path / "nope.ttf"
    with pytest.raises(FileNotFoundError, match=r"nope.ttf"):
        Renderer(font_path=str(missing)).render("x")
    import matplotlib

    monkeypatch.setattr(matplotlib, "get_data_path", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"DejaVuSans.ttf: font file not found"):
        default_font_path()


def test_default_font_is_matplotlibs_dejavu_and_fits_the_patch():
    path, size = Renderer().resolved_font()
    assert Path(path) == default_font_path() and Path(path).name == "DejaVuSans.ttf"
    assert size == 12
    bigger = dataclasses.replace(Renderer(), font_size=14)
    assert bigger.patch_count("same text here") > Renderer().patch_count("same text here")
