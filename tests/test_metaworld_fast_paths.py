"""The fast paths of benchmarks.metaworld.envs (object quaternions, gripper contacts) give MetaWorld's own results."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmarks.metaworld.envs import expert_policy, make_env, quat_from_matrix, reset_episode, use_fast_quaternions


def test_bit_identical_to_scipy_on_random_rotations():
    mats = Rotation.random(5000, random_state=1).as_matrix()
    # the Markley branches: near-identity (trace largest) and 180-degree turns about each axis (a diagonal largest)
    special = [np.eye(3), np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])]
    for m in list(mats) + special:
        np.testing.assert_array_equal(quat_from_matrix(m), Rotation.from_matrix(m).as_quat())


def test_defers_where_scipy_would_not_take_the_matrix_as_is():
    rot = Rotation.random(random_state=2).as_matrix()
    assert quat_from_matrix(rot * 1.01) is None  # not orthonormal: scipy orthonormalises it by SVD
    assert quat_from_matrix(-rot) is None  # det = -1: scipy raises
    assert quat_from_matrix(np.stack([rot, rot])) is None  # a batch
    mod = "metaworld.envs.sawyer_door_v3"
    make_env("door-open")
    import sys

    shim = sys.modules[mod].Rotation
    np.testing.assert_array_equal(shim.from_matrix(rot * 1.01).as_quat(), Rotation.from_matrix(rot * 1.01).as_quat())
    with pytest.raises(ValueError):
        shim.from_matrix(-rot).as_quat()
    np.testing.assert_array_equal(shim.from_matrix(rot).as_quat(scalar_first=True),
                                  Rotation.from_matrix(rot).as_quat(scalar_first=True))
    assert shim.random(random_state=0).as_quat().shape == (4,)  # other attributes are scipy's


@pytest.mark.parametrize("task,geom", [("door-open", "handle"), ("plate-slide", "puck"), ("sweep-into", "objGeom")])
def test_env_observations_hold_scipys_quaternions(task, geom):
    env = make_env(task)
    assert use_fast_quaternions(type(env.unwrapped).__module__)  # patched (idempotent)
    rng = np.random.default_rng(0)
    reset_episode(env, 3)
    for _ in range(60):  # random actions move the object, so the rotations vary
        obs, *_ = env.step(rng.uniform(-1, 1, 4))
        xmat = env.unwrapped.data.geom(geom).xmat.reshape(3, 3)
        np.testing.assert_array_equal(obs[7:11], Rotation.from_matrix(xmat).as_quat())


def test_unpatched_modules_are_left_alone():
    env = make_env("button-press")  # reads mujoco's xquat, no scipy
    assert not use_fast_quaternions(type(env.unwrapped).__module__)


def test_vectorised_contact_test_agrees_with_metaworlds_loop():
    env = make_env("sweep-into")
    u = env.unwrapped
    assert u.touching_object.__func__ is not type(u).touching_object  # replaced on the instance
    expert = expert_policy("sweep-into")  # grasps the object, so both answers occur
    seen = set()
    for seed in (3, 4):
        obs, _ = reset_episode(env, seed)
        for _ in range(150):
            obs, *_ = env.step(expert.get_action(obs.copy()))
            for gid in (u.data.geom("objGeom").id, u.data.geom("leftpad_geom").id):
                got, want = u.touching_object(gid), type(u).touching_object(u, gid)
                assert got == want
                seen.add(want)
    assert seen == {True, False}
