"""The receiver's motion field: exact where nothing moves, following the head where it does."""

from __future__ import annotations

import numpy as np

from appliance.codec.mesh import Mesh, similarity


def test_the_reference_maps_onto_itself_exactly(talking_head):
    width, height = talking_head.size
    mesh = Mesh(talking_head.landmarks[0], width, height)
    map_x, map_y = mesh.backward_map(*mesh.target(talking_head.landmarks[0]))
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    assert map_x.shape == (height, width)
    assert np.abs(map_x - grid_x).max() < 1e-3
    assert np.abs(map_y - grid_y).max() < 1e-3


def test_a_moved_head_moves_the_face_and_leaves_the_room_still(talking_head):
    width, height = talking_head.size
    reference = talking_head.landmarks[0]
    mesh = Mesh(reference, width, height)
    moved = reference + np.array([6.0, 4.0, 0.0])
    map_x, map_y = mesh.backward_map(*mesh.target(moved))
    nose = np.rint(moved[1, :2]).astype(int)  # landmark 1: the nose tip
    # the pixel now at the nose reads the reference's nose, 6 px left and 4 px up
    assert abs(map_x[nose[1], nose[0]] - (nose[0] - 6.0)) < 0.05
    assert abs(map_y[nose[1], nose[0]] - (nose[1] - 4.0)) < 0.05
    for x, y in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)):
        assert abs(map_x[y, x] - x) < 1e-3 and abs(map_y[y, x] - y) < 1e-3


def test_a_box_is_the_same_map_as_the_whole_frame_cut_to_it(talking_head):
    width, height = talking_head.size
    mesh = Mesh(talking_head.landmarks[0], width, height)
    target = mesh.target(talking_head.landmarks[30])
    whole_x, whole_y = mesh.backward_map(*target, step=2)
    box = (150, 200, 260, 290)
    part_x, part_y = mesh.backward_map(*target, box=box, step=2)
    assert part_x.shape == (90, 110)
    # different grids sample the same piecewise-affine field: equal but at triangle edges
    assert np.median(np.abs(part_x - whole_x[200:290, 150:260])) < 0.01
    assert np.median(np.abs(part_y - whole_y[200:290, 150:260])) < 0.01


def test_similarity_recovers_a_rotation_scale_and_shift():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (20, 2))
    angle, scale = 0.2, 1.3
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ rot.T + (5.0, -3.0)
    fitted = similarity(points, moved)
    assert np.allclose(fitted[:, :2], rot) and np.allclose(fitted[:, 2], (5.0, -3.0))
