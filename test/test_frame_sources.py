"""Frame sources without ROS: photos, folders, videos and YAML detections for the player and demos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from ivlm_core.frame_sources import detections_from_yaml, load_stills, video_frames


def test_video_is_decoded_frame_by_frame(tmp_path):
    path = tmp_path / "clip.avi"
    frame = cv2.cvtColor(skimage.data.astronaut()[::2, ::2], cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, frame.shape[1::-1])
    for s in [0, 20, 40]:
        writer.write(np.roll(frame, s, axis=1))
    writer.release()
    frames = list(video_frames(path))
    assert [f.name for f in frames] == ["clip.avi#0", "clip.avi#1", "clip.avi#2"]
    assert np.abs(frames[2].rgb.astype(int) - np.roll(frame[:, :, ::-1], 40, axis=1)).mean() < 8


def test_builtin_photo_and_bad_sources_say_what_is_wrong(tmp_path):
    (camera,) = load_stills("skimage:camera")
    assert camera.rgb.shape == (512, 512, 3) and camera.rgb.dtype == np.uint8
    with pytest.raises(ValueError, match="not an image, a folder"):
        load_stills("/nonexistent/photo.jpg")
    with pytest.raises(ValueError, match="no images"):
        load_stills(str(tmp_path))
    with pytest.raises(ValueError, match="cannot open video"):
        list(video_frames(tmp_path / "missing.avi"))


def test_yaml_detections_are_parsed_or_refused_with_the_reason():
    (cup,) = detections_from_yaml("[{label: cup, box: [1, 2, 30, 40], score: 0.5, id: a}]")
    assert cup.label == "cup" and cup.score == 0.5 and cup.id == "a"
    np.testing.assert_array_equal(cup.box_xyxy, [1, 2, 30, 40])
    assert detections_from_yaml("") == []
    with pytest.raises(ValueError, match="'label' and 'box'"):
        detections_from_yaml("[{label: cup}]")
    # each item checked as a detector's: every bad one named, with its reason
    with pytest.raises(ValueError, match="detection 1 needs 'label' and 'box'"):
        detections_from_yaml("[{label: cup, box: [1, 2, 30, 40]}, 7]")
    bad = ("[{label: cup, box: [1, 2, 30, 40], score: .nan}, {label: 3, box: [0, 0, 5, 5]}, "
           "{label: cup, box: {x: 1}}, {label: cup, box: [5, 5, 1, 1], id: b}, "
           "{label: cup, box: [0, 0, 1, 1]}]")
    with pytest.raises(ValueError) as refused:
        detections_from_yaml(bad)
    why = str(refused.value)
    assert "detection 0 ('cup') dropped: score is nan" in why and "detection 4" not in why
    assert "class_id '3' is a number but the parameter class_names is empty" in why
    assert "detection 2 ('cup') dropped" in why and "detection 3 'b' ('cup') dropped: " in why
    with pytest.raises(ValueError, match="YAML list"):
        detections_from_yaml("{label: cup}")
