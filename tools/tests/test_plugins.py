"""The DCC shims over rigfit's C ABI.

Blender (needs ``pip install 'bpy==4.5.*'`` and the native library built by ``cargo build``):
install and enable the add-on in headless Blender, fit keypoints written from a known rigfit
motion, and check the rig against the library (24 bones, keyframe counts, bone heads and skinned
vertices equal to rigfit's joints / vertices within 1e-4 m, the camera projection equal to
rigfit's), both animation APIs, cancel, export and re-import.

Maya (no Maya here): the plug-in's logic (scripts/rigfit_maya_core.py) against a fake ``maya``
package that records the commands.

The native library: ``$RIGFIT_LIB``, else ``$CARGO_TARGET_DIR/debug`` or ``target/debug``. Without
it the tests that need it are skipped; with ``RIGFIT_LIB`` set to a missing file they fail.
"""

import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLENDER_ADDON = ROOT / "plugins" / "blender" / "rigfit"
MAYA = ROOT / "plugins" / "maya"

sys.path.insert(0, str(BLENDER_ADDON))
import rigfit_native as rn  # noqa: E402  (the add-on's bindings; no bpy needed)

sys.path.pop(0)


_NATIVE = []


def native_lib():
    if _NATIVE:
        return _NATIVE[0]
    env = os.environ.get("RIGFIT_LIB")
    if env:
        assert os.path.exists(env), "RIGFIT_LIB=%s does not exist" % env
        _NATIVE.append(env)
        return env
    dirs = [os.environ.get("CARGO_TARGET_DIR"), str(ROOT / "target")]
    for d in dirs:
        if d:
            p = os.path.join(d, "debug", rn.library_filename())
            if os.path.exists(p):
                _NATIVE.append(p)
                return p
    pytest.skip("rigfit native library not built (cargo build; or set RIGFIT_LIB)")


def axis_angle_matrix(v):
    """Rodrigues' formula: test data only (the shims themselves do no math)."""
    th = math.sqrt(sum(x * x for x in v))
    if th < 1e-12:
        return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    x, y, z = (c / th for c in v)
    c, s, C = math.cos(th), math.sin(th), 1 - math.cos(th)
    return [c + x * x * C, x * y * C - z * s, x * z * C + y * s, y * x * C + z * s, c + y * y * C, y * z * C - x * s, z * x * C - y * s, z * y * C + x * s, c + z * z * C]


def walk(frames):
    rot, tr = [], []
    for f in range(frames):
        s = math.sin(0.3 * f)
        aa = {1: [-0.4 - 0.3 * s, 0, 0.1], 2: [-0.2 + 0.3 * s, 0, -0.1], 4: [0.6 + 0.2 * s, 0, 0], 5: [0.4 - 0.2 * s, 0, 0], 16: [0, 0, -1.1], 17: [0, 0, 1.1], 18: [0, -0.8 - 0.3 * s, 0]}
        for j in range(24):
            rot += axis_angle_matrix(aa.get(j, [0, 0, 0]))
        tr += [0.02 * f, 0.1, -4.0]
    return rot, tr


def write_openpose(folder, kp, frames):
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(frames):
        doc = {"version": 1.3, "people": [{"person_id": [0], "pose_keypoints_2d": list(kp[75 * f:75 * (f + 1)])}]}
        (folder / ("clip_%012d_keypoints.json" % f)).write_text(json.dumps(doc))


def test_native_bindings_are_identical_in_both_plugins():
    a = (BLENDER_ADDON / "rigfit_native.py").read_bytes()
    b = (MAYA / "scripts" / "rigfit_native.py").read_bytes()
    assert a == b, "plugins/maya/scripts/rigfit_native.py must be a copy of plugins/blender/rigfit/rigfit_native.py"


def test_bindings_declare_every_function_of_the_header():
    header = (ROOT / "cpp" / "rigfit.h").read_text()
    import re

    declared = set(re.findall(r"\b(rigfit_[a-z0-9_]+)\(", header))
    missing = declared - set(rn._SIGNATURES) - {"rigfit_status_name", "rigfit_num_keypoints", "rigfit_debug_panic"}
    assert not missing, "rigfit_native.py lacks %s" % sorted(missing)


# ------------------------------------------------------------------------------------------------
# Blender
# ------------------------------------------------------------------------------------------------

FRAMES = 4
W, H, FOCAL = 1000, 800, 1200.0


@pytest.fixture(scope="module")
def blender(tmp_path_factory):
    lib_path = native_lib()
    home = tmp_path_factory.mktemp("blender_home")
    saved = {k: os.environ.get(k) for k in ("BLENDER_USER_SCRIPTS", "BLENDER_USER_CONFIG", "RIGFIT_LIB")}
    os.environ["BLENDER_USER_SCRIPTS"] = str(home / "scripts")
    os.environ["BLENDER_USER_CONFIG"] = str(home / "config")
    bpy = pytest.importorskip("bpy")
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    # Install as a classic add-on from a zip (as a user would), then bundle the library in lib/.
    zpath = home / "rigfit_addon.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for p in BLENDER_ADDON.rglob("*"):
            if p.is_file() and "lib" not in p.relative_to(BLENDER_ADDON).parts and "__pycache__" not in p.parts:
                z.write(p, Path("rigfit") / p.relative_to(BLENDER_ADDON))
    assert bpy.ops.preferences.addon_install(filepath=str(zpath), overwrite=True) == {"FINISHED"}
    installed = Path(bpy.utils.user_resource("SCRIPTS", path="addons")) / "rigfit"
    assert installed.is_dir() and str(installed).startswith(str(home)), installed
    (installed / "lib").mkdir(exist_ok=True)
    shutil.copy(lib_path, installed / "lib" / rn.library_filename())
    os.environ.pop("RIGFIT_LIB", None)  # the add-on must find lib/ on its own
    mod = addon_utils.enable("rigfit", default_set=True)
    assert mod is not None and hasattr(bpy.types.Scene, "rigfit")
    addon = importlib.import_module("rigfit")
    assert Path(addon.__file__).parent == installed
    yield bpy, addon, home
    addon_utils.disable("rigfit")
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def footage(blender):
    """Keypoints of a known motion seen by a 1000x800 camera with a 1200 px focal length."""
    bpy, addon, home = blender
    lib = addon.library()
    sess = addon.session()
    rot, tr = walk(FRAMES)
    truth = sess.motion(FRAMES, 24.0, rot, tr, betas=[0.5, -0.3])
    truth.add_camera(addon.rn.view_from_focal(lib, FOCAL, W, H))
    kp = truth.project_keypoints(0)
    folder = home / "keypoints"
    write_openpose(folder, kp, FRAMES)
    img = bpy.data.images.new("plate", W, H)
    plate = home / "plate.png"
    img.filepath_raw = str(plate)
    img.file_format = "PNG"
    img.save()
    bpy.data.images.remove(img)
    return folder, plate


def fcurves(action):
    """Every F-curve of an action (layered actions of 4.4+ / 5.x, or legacy)."""
    if getattr(action, "layers", None) and len(action.layers):
        out = []
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    out.extend(bag.fcurves)
        return out
    return list(action.fcurves)


def z_up(p):
    """Y-up (rigfit) to Z-up (Blender): (x, y, z) -> (x, -z, y)."""
    return (p[0], -p[2], p[1])


def check_rig_matches_library(bpy, addon, arm, motion, frames, tol=1e-4):
    scene = bpy.context.scene
    joints = motion.joints()
    names = addon.rn.joint_names(addon.library())
    worst = 0.0
    for frame in frames:
        scene.frame_set(frame)
        base = (frame - scene.frame_start) * 72
        for j, name in enumerate(names):
            pb = arm.pose.bones[name]
            got = arm.matrix_world @ pb.head
            want = z_up(joints[base + 3 * j:base + 3 * j + 3])
            worst = max(worst, max(abs(got[k] - want[k]) for k in range(3)))
    assert worst < tol, "bone heads differ from rigfit's joints by %.2e m" % worst
    return worst


def fit_in_blender(bpy, folder, plate, **settings):
    scene = bpy.context.scene
    st = scene.rigfit
    st.keypoints = str(folder)
    st.footage = str(plate)
    st.camera_source = "INTRINSICS"
    st.width, st.height, st.focal_px = W, H, FOCAL
    st.quality = "PREVIEW"
    st.scene_frame = 1
    for k, v in settings.items():
        setattr(st, k, v)
    return bpy.ops.rigfit.fit()


def test_blender_fit_builds_a_rig_that_matches_the_library(blender, footage):
    bpy, addon, home = blender
    folder, plate = footage
    bpy.ops.wm.read_homefile(use_empty=True)
    assert fit_in_blender(bpy, folder, plate) == {"FINISHED"}
    scene = bpy.context.scene
    arm = scene.objects["rigfit"]
    motion = addon.MOTIONS[arm.name]
    lib = addon.library()
    assert arm.type == "ARMATURE"
    names, parents = addon.rn.joint_names(lib), addon.rn.joint_parents(lib)
    assert len(arm.data.bones) == 24 and sorted(b.name for b in arm.data.bones) == sorted(names)
    for j, n in enumerate(names):
        p = arm.data.bones[n].parent
        assert (p.name if p else None) == (names[parents[j]] if parents[j] >= 0 else None), n
    for b in arm.data.bones:  # identity rest orientation in armature space
        r = b.matrix_local.to_3x3()
        assert max(abs(r[i][k] - (i == k)) for i in range(3) for k in range(3)) < 1e-6, b.name
    # Skinned body mesh.
    body = scene.objects["rigfit_body"]
    assert body.parent == arm
    assert len(body.data.vertices) == addon.session().num_vertices
    assert sorted(g.name for g in body.vertex_groups) == sorted(addon.rn.joint_names(lib))
    assert body.modifiers[0].type == "ARMATURE" and body.modifiers[0].object == arm
    # Keyframes on every fitted frame: 24 quaternions + the root location.
    curves = fcurves(arm.animation_data.action)
    assert len(curves) == 24 * 4 + 3
    for fc in curves:
        assert [kp.co[0] for kp in fc.keyframe_points] == [1.0, 2.0, 3.0, 4.0], fc.data_path
    assert (scene.frame_start, scene.frame_end) == (1, FRAMES)
    assert motion.num_frames == FRAMES
    # Bone heads equal rigfit's own forward pass at several frames.
    check_rig_matches_library(bpy, addon, arm, motion, [1, 2, FRAMES])
    # The skinned mesh equals rigfit's posed vertices (the default body has no pose correctives).
    scene.frame_set(3)
    dg = bpy.context.evaluated_depsgraph_get()
    ev = body.evaluated_get(dg)
    me = ev.to_mesh()
    verts = motion.vertices(2)
    worst = max(max(abs(a - b) for a, b in zip(body.matrix_world @ v.co, z_up(verts[3 * i:3 * i + 3]))) for i, v in enumerate(me.vertices))
    ev.to_mesh_clear()
    assert worst < 1e-4, "skinned vertices differ from rigfit's by %.2e m" % worst
    # The camera: film back from the intrinsics, and rigfit's projection of the pelvis (BODY_25
    # MidHip = SMPL joint 0) equals Blender's.
    from bpy_extras.object_utils import world_to_camera_view

    cam = scene.camera
    assert cam is not None and cam.parent == scene.objects["rigfit_root"]
    assert abs(cam.data.lens - FOCAL / W * 36.0) < 1e-4
    assert (scene.render.resolution_x, scene.render.resolution_y) == (W, H)
    assert cam.data.background_images[0].image.filepath == str(plate)
    kp = motion.project_keypoints(0)
    for frame in (1, FRAMES):
        scene.frame_set(frame)
        ndc = world_to_camera_view(scene, cam, arm.matrix_world @ arm.pose.bones["pelvis"].head)
        u, v = ndc.x * W, (1.0 - ndc.y) * H
        i = (frame - 1) * 75 + 8 * 3
        assert abs(u - kp[i]) < 0.05 and abs(v - kp[i + 1]) < 0.05, (u, v, kp[i], kp[i + 1])
    assert "mean reprojection" in scene.rigfit.status


def test_blender_legacy_and_layered_animation_apis_give_the_same_rig(blender, footage):
    bpy, addon, home = blender
    folder, plate = footage
    bpy.ops.wm.read_homefile(use_empty=True)
    sess = addon.session()
    lib = addon.library()
    motion = sess.fit_files(str(folder), W, H, FOCAL, 24.0, options=addon.rn.fit_options(lib, "preview"))
    for layered in (False, True):
        if layered and not addon.build.use_layered_actions():
            continue  # before 4.4
        if not layered and bpy.app.version >= (5, 0, 0):
            continue  # Blender 5 removed Action.fcurves
        made = addon.build.build_scene(bpy.context, sess, motion, name="rig_%d" % layered, layered=layered)
        arm = made["armature"]
        assert len(fcurves(arm.animation_data.action)) == 24 * 4 + 3
        check_rig_matches_library(bpy, addon, arm, motion, [1, FRAMES])


def test_blender_selected_cameras_are_calibrated_views(blender):
    from mathutils import Matrix

    bpy, addon, home = blender
    rnb, lib, sess = addon.rn, addon.library(), addon.session()
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = W, H
    rot, tr = walk(FRAMES)
    truth = sess.motion(FRAMES, 24.0, rot, tr)
    # Two cameras in rigfit's Y-up world: at the origin looking down -Z, and 3 m to the side
    # looking down -X (a quarter turn about Y).
    poses = {"front": ([1, 0, 0, 0, 1, 0, 0, 0, 1], [0.0, 0.0, 0.0]), "side": ([0, 0, 1, 0, 1, 0, -1, 0, 0], [3.0, 0.1, -4.0])}
    for i, (name, (r, p)) in enumerate(poses.items()):
        data = bpy.data.cameras.new(name)
        data.sensor_fit, data.sensor_width, data.lens = "HORIZONTAL", 36.0, FOCAL / W * 36.0
        cam = bpy.data.objects.new(name, data)
        scene.collection.objects.link(cam)
        m = Matrix(((r[0], r[1], r[2], p[0]), (r[3], r[4], r[5], p[1]), (r[6], r[7], r[8], p[2]), (0, 0, 0, 1)))
        cam.matrix_world = addon.build.Y_UP_TO_Z_UP @ m
        truth.add_camera(rnb.view_from_film(lib, data.lens, 36.0, 0.0, 0.0, W, H, name=name, pose=(r, p)))
        write_openpose(home / ("view_" + name), truth.project_keypoints(i), FRAMES)
        cam["rigfit_keypoints"] = str(home / ("view_" + name))
        cam.select_set(True)
    st = scene.rigfit
    st.camera_source, st.quality, st.scene_frame = "VIEWS", "PREVIEW", 1
    assert bpy.ops.rigfit.fit() == {"FINISHED"}
    arm = scene.objects["rigfit"]
    motion = addon.MOTIONS[arm.name]
    # The fit used both cameras as calibrated views (their poses come back unchanged) and made
    # no new camera; the rig matches the library in the cameras' world.
    assert motion.num_cameras == 2
    for c in range(2):
        v = motion.camera(c)
        r, p = poses[v.name.decode()]
        assert max(abs(a - b) for a, b in zip(list(v.rotation) + list(v.position), r + p)) < 1e-4
    assert sorted(o.name for o in scene.objects if o.type == "CAMERA") == ["front", "side"]
    check_rig_matches_library(bpy, addon, arm, motion, [1, FRAMES])


def test_blender_fit_reports_progress_and_cancels(blender, footage):
    bpy, addon, home = blender
    folder, plate = footage
    bpy.ops.wm.read_homefile(use_empty=True)
    st = bpy.context.scene.rigfit
    st.keypoints, st.camera_source, st.width, st.height, st.focal_px, st.quality = str(folder), "INTRINSICS", W, H, FOCAL, "PREVIEW"
    # On a worker thread (as the modal operator runs it): progress reaches "done".
    job, plan = addon.prepare(bpy.context)
    job.start()
    job.thread.join(300)
    assert job.finished and job.error is None and job.result.num_frames == FRAMES
    assert job.stage == "done" and job.fraction == 1.0
    # Cancelled (Esc sets job.cancel): the library stops, nothing is built.
    job, plan = addon.prepare(bpy.context)
    job.cancel = True
    job.start()
    job.thread.join(300)
    assert isinstance(job.error, addon.rn.Cancelled) and job.error.status == addon.rn.RIGFIT_ERR_CANCELLED
    n = len(bpy.data.objects)
    assert addon.RIGFIT_OT_fit._finish(_FakeOp(), bpy.context, job, plan) == {"CANCELLED"}
    assert len(bpy.data.objects) == n and st.status == "cancelled"
    # Bad input: an error report, not a crash.
    st.keypoints = str(folder / "missing.json")
    with pytest.raises(RuntimeError):
        bpy.ops.rigfit.fit()


class _FakeOp:
    def report(self, kind, msg):
        self.last = (kind, msg)


def test_blender_export_glb_and_reimport(blender, footage):
    bpy, addon, home = blender
    folder, plate = footage
    bpy.ops.wm.read_homefile(use_empty=True)
    assert fit_in_blender(bpy, folder, plate) == {"FINISHED"}
    arm = bpy.context.scene.objects["rigfit"]
    motion = addon.MOTIONS[arm.name]
    out = home / "rig.glb"
    try:
        motion.write_glb(str(out))
    except addon.rn.RigfitError as e:
        if e.status == addon.rn.RIGFIT_ERR_UNSUPPORTED:
            pytest.skip("this library build has no glTF exporter yet: %s" % e.message)
        raise
    out.unlink()
    # The motion reloads from the .blend's Text copy when the session's handle is gone.
    addon.MOTIONS.clear()
    bpy.context.view_layer.objects.active = arm
    assert bpy.ops.rigfit.export_glb(filepath=str(out)) == {"FINISHED"}
    assert out.stat().st_size > 1000
    usd = home / "rig.usda"
    assert bpy.ops.rigfit.export_usd(filepath=str(usd)) == {"FINISHED"}
    assert "UsdSkel" in usd.read_text() or "Skeleton" in usd.read_text()
    # Re-import both: 24 joints and the fitted frames.
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.import_scene.gltf(filepath=str(out)) == {"FINISHED"}
    arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    assert len(arms) == 1 and len(arms[0].data.bones) == 24
    act = arms[0].animation_data.action
    lo, hi = act.frame_range
    assert round(hi - lo) + 1 >= FRAMES
    if bpy.app.build_options.usd:
        bpy.ops.wm.read_homefile(use_empty=True)
        assert bpy.ops.wm.usd_import(filepath=str(usd)) == {"FINISHED"}
        arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
        assert len(arms) == 1 and len(arms[0].data.bones) == 24


def test_blender_extension_manifest_validates(blender, tmp_path):
    bpy, addon, home = blender
    cli = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    if not cli.exists():
        pytest.skip("this bpy has no extension CLI")
    src = tmp_path / "rigfit"
    shutil.copytree(BLENDER_ADDON, src, ignore=shutil.ignore_patterns("lib", "__pycache__"))
    r = subprocess.run([sys.executable, str(cli), "validate", str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([sys.executable, str(cli), "build", "--source-dir", str(src), "--output-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(tmp_path.glob("rigfit-0.1.0*.zip"))


# ------------------------------------------------------------------------------------------------
# C / C++ (cpp/): the CMake build and its ctest suite against the same library
# ------------------------------------------------------------------------------------------------


def test_cpp_ctest_suite(tmp_path):
    lib = native_lib()
    if shutil.which("cmake") is None:
        assert not os.environ.get("RIGFIT_REQUIRE_CMAKE"), "cmake not found and RIGFIT_REQUIRE_CMAKE is set"
        pytest.skip("cmake not installed")
    build = tmp_path / "build"

    def run(*cmd):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, "%s failed:\n%s%s" % (cmd, r.stdout, r.stderr)
        return r.stdout

    run("cmake", "-S", str(ROOT / "cpp"), "-B", str(build), "-DRIGFIT_LIB_DIR=%s" % os.path.dirname(lib))
    run("cmake", "--build", str(build), "-j2")
    out = run("ctest", "--test-dir", str(build), "--output-on-failure")
    assert "100% tests passed" in out and "3 tests" in out.replace("out of 3", "3 tests"), out


# ------------------------------------------------------------------------------------------------
# Maya: the core logic against a fake maya.cmds
# ------------------------------------------------------------------------------------------------


class FakeCmds:
    """Records what rigfit_maya_core asks of maya.cmds, with just enough behaviour."""

    def __init__(self, up="y", time_unit="film", cancel=False):
        self.up, self.time_unit, self.cancel = up, time_unit, cancel
        self.nodes = {}  # name -> {"type", "parent"}
        self.attrs = {}
        self.selection = []
        self.calls = []
        self.matrices = {}  # xform(query) answers by node

    def _new(self, name, kind, parent=None):
        n, i = name, 1
        while n in self.nodes:
            n, i = "%s%d" % (name, i), i + 1
        self.nodes[n] = {"type": kind, "parent": parent}
        return n

    def group(self, empty=True, name="group"):
        return self._new(name, "transform")

    def select(self, *objs, replace=False, clear=False):
        self.selection = [] if clear else list(objs)

    def joint(self, name, position, absolute):
        assert absolute
        parent = self.selection[0] if self.selection else None
        n = self._new(name, "joint", parent)
        self.attrs[n + ".position"] = tuple(position)
        self.selection = [n]
        return n

    def setAttr(self, plug, value):
        self.attrs[plug] = value

    def getAttr(self, plug):
        return self.attrs[plug]

    def skinCluster(self, joints, mesh, **kw):
        self.calls.append(("skinCluster", list(joints), mesh, kw))
        return [self._new(kw.get("name", "skinCluster"), "skinCluster")]

    def camera(self, name):
        t = self._new(name, "transform")
        s = self._new(t + "Shape", "camera", t)
        return [t, s]

    def parent(self, child, parent):
        self.nodes[child]["parent"] = parent
        return [child]

    def xform(self, node, query=False, matrix=None, objectSpace=False, worldSpace=False):
        if query:
            return self.matrices[node]
        self.attrs[node + ".matrix"] = list(matrix)

    def imagePlane(self, camera, fileName):
        self.calls.append(("imagePlane", camera, fileName))

    def upAxis(self, query, axis):
        return self.up

    def playbackOptions(self, minTime, maxTime):
        self.calls.append(("playbackOptions", minTime, maxTime))

    def currentUnit(self, query, time):
        return self.time_unit

    def progressWindow(self, *args, **kw):
        self.calls.append(("progressWindow", kw))
        if kw.get("query"):
            return self.cancel

    def delete(self, node):
        self.nodes.pop(node, None)

    def nodeType(self, node):
        return self.nodes[node]["type"]

    def listRelatives(self, node, shapes=False, type=None, parent=False):
        if parent:
            return [self.nodes[node]["parent"]]
        return [n for n, v in self.nodes.items() if v["parent"] == node and v["type"] == type]

    def spaceLocator(self, name):
        return [self._new(name, "transform")]

    def matchTransform(self, a, b):
        self.matrices[a] = self.matrices[b]


class FakeOps:
    def __init__(self):
        self.meshes, self.weights, self.keys = [], [], {}

    def create_mesh(self, name, points, faces, parent):
        self.meshes.append((name, len(points), len(faces), parent))
        return name

    def set_skin_weights(self, skin, mesh, joints, weights, num_joints):
        self.weights.append((skin, mesh, list(joints), len(weights), num_joints))

    def set_keys(self, node, attr, times, values):
        assert (node, attr) not in self.keys
        self.keys[(node, attr)] = (list(times), list(values))


@pytest.fixture(scope="module")
def maya_core():
    sys.path.insert(0, str(MAYA / "scripts"))
    try:
        import rigfit_maya_core

        yield rigfit_maya_core
    finally:
        sys.path.remove(str(MAYA / "scripts"))


@pytest.fixture(scope="module")
def maya_footage(tmp_path_factory):
    lib = rn.load(native_lib())
    sess = rn.Session(lib)
    rot, tr = walk(FRAMES)
    truth = sess.motion(FRAMES, 24.0, rot, tr)
    truth.add_camera(rn.view_from_focal(lib, FOCAL, W, H))
    folder = tmp_path_factory.mktemp("maya") / "keypoints"
    write_openpose(folder, truth.project_keypoints(0), FRAMES)
    return lib, folder


def close(a, b, tol=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


@pytest.mark.parametrize("up", ["y", "z"])
def test_maya_core_builds_the_rig_from_the_library(maya_core, maya_footage, up):
    lib, folder = maya_footage
    cmds, ops = FakeCmds(up=up), FakeOps()
    made = maya_core.fit_and_build(cmds, ops, keypoints=str(folder), width=W, height=H, focal=FOCAL, fps=24.0, preview=True, name="actor", footage="/shots/plate.mov", lib=lib)
    motion = made["motion"]
    names, parents = rn.joint_names(lib), rn.joint_parents(lib)
    joints = made["joints"]
    assert joints == ["actor_" + n for n in names]
    rest = motion.rest_joints()
    for j, jn in enumerate(joints):
        want_parent = made["root"] if parents[j] < 0 else joints[parents[j]]
        assert cmds.nodes[jn]["parent"] == want_parent
        assert close(cmds.attrs[jn + ".position"], rest[3 * j:3 * j + 3])
        assert cmds.attrs[jn + ".rotateOrder"] == 0
    # Skinned body: the library's rest mesh, faces and weights.
    sess = maya_core.session(lib)
    assert ops.meshes == [("actor_body", 3 * sess.num_vertices, len(sess.faces()), made["root"])]
    skin = [c for c in cmds.calls if c[0] == "skinCluster"]
    assert len(skin) == 1 and skin[0][1] == joints and skin[0][2] == "actor_body"
    assert ops.weights == [(made["skin"], "actor_body", joints, 24 * sess.num_vertices, 24)]
    # Keys: rotate X/Y/Z of every joint (the library's Euler angles) and the pelvis position.
    assert len(ops.keys) == 24 * 3 + 3
    euler, world = motion.euler_xyz(), motion.joints()
    times = [1.0, 2.0, 3.0, 4.0]
    for j, jn in enumerate(joints):
        for k, a in enumerate("XYZ"):
            t, v = ops.keys[(jn, "rotate" + a)]
            assert t == times and close(v, [euler[f * 72 + 3 * j + k] for f in range(FRAMES)])
    for k, a in enumerate("XYZ"):
        t, v = ops.keys[(joints[0], "translate" + a)]
        assert t == times and close(v, [world[f * 72 + k] for f in range(FRAMES)])
    # The footage camera: film back from the intrinsics, at the origin of the rig's frame.
    cam = made["cameras"][0]
    shape = cam + "Shape"
    assert abs(cmds.attrs[shape + ".focalLength"] - FOCAL / W * 36.0) < 1e-4
    assert abs(cmds.attrs[shape + ".horizontalFilmAperture"] - 36.0 / 25.4) < 1e-6
    assert cmds.attrs[cam + ".matrix"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    assert ("imagePlane", cam, "/shots/plate.mov") in cmds.calls
    assert ("playbackOptions", 1.0, float(FRAMES)) in cmds.calls
    assert cmds.attrs.get(made["root"] + ".rotateX", 0.0) == (90.0 if up == "z" else 0.0)
    windows = [c[1] for c in cmds.calls if c[0] == "progressWindow"]
    assert windows[0].get("isInterruptable") and windows[-1] == {"endProgress": True}


def test_maya_core_cancel_and_errors(maya_core, maya_footage):
    lib, folder = maya_footage
    cmds, ops = FakeCmds(cancel=True), FakeOps()
    with pytest.raises(rn.Cancelled):
        maya_core.fit_and_build(cmds, ops, keypoints=str(folder), width=W, height=H, focal=FOCAL, preview=True, lib=lib)
    assert "rigfit_root" not in cmds.nodes and not ops.keys  # the half-made root is deleted
    assert ("progressWindow", {"endProgress": True}) in cmds.calls
    cmds = FakeCmds()
    with pytest.raises(rn.RigfitError) as e:
        maya_core.fit_and_build(cmds, FakeOps(), keypoints=str(folder / "missing.json"), lib=lib)
    assert e.value.status == rn.RIGFIT_ERR_IO and "missing.json" in e.value.message


def test_maya_camera_view_from_a_maya_camera(maya_core, maya_footage):
    lib, _ = maya_footage
    cmds = FakeCmds()
    root = cmds.group(name="root")
    cam, shape = cmds.camera(name="witness")
    cmds.attrs.update({shape + ".focalLength": 50.0, shape + ".horizontalFilmAperture": 1.417, shape + ".horizontalFilmOffset": 0.0, shape + ".verticalFilmOffset": 0.0})
    c, s = math.cos(0.5), math.sin(0.5)
    # Maya row-vector matrix of a camera turned 0.5 rad about Y at (1, 2, 3).
    cmds.matrices[cam] = [c, 0, -s, 0, 0, 1, 0, 0, s, 0, c, 0, 1, 2, 3, 1]
    v = maya_core.camera_view(lib, cmds, cam, root, 1920, 1080)
    assert close(list(v.rotation), [c, 0, s, 0, 1, 0, -s, 0, c]) and close(list(v.position), [1, 2, 3])
    assert v.has_pose == 1 and abs(v.fx - 50.0 / (1.417 * 25.4) * 1920) < 1e-2 and v.cx == 960.0
    assert "rigfit_tmp_locator" not in cmds.nodes


def fake_maya_modules(cmds):
    """A fake ``maya`` package: maya.cmds, maya.api.OpenMaya(Anim) with what the plug-in uses."""
    import types

    om = types.ModuleType("maya.api.OpenMaya")

    class MSyntax:
        kString, kLong, kDouble = "string", "long", "double"

        def __init__(self):
            self.flags = []

        def addFlag(self, short, long, kind=None):
            self.flags.append((short, long, kind))

    class MPxCommand:
        def __init__(self):
            self.result = None

        def setResult(self, r):
            self.result = r

    class MArgDatabase:
        values = {}

        def __init__(self, syntax, args):
            self.v = args

        def isFlagSet(self, f):
            return f in self.v

        def flagArgumentString(self, f, i):
            return self.v[f]

        flagArgumentInt = flagArgumentDouble = flagArgumentString

    class MFnPlugin:
        registered = {}

        def __init__(self, obj, *a):
            pass

        def registerCommand(self, name, creator, syntax):
            MFnPlugin.registered[name] = (creator, syntax)

        def deregisterCommand(self, name):
            del MFnPlugin.registered[name]

    om.MSyntax, om.MPxCommand, om.MArgDatabase, om.MFnPlugin = MSyntax, MPxCommand, MArgDatabase, MFnPlugin
    maya = types.ModuleType("maya")
    api = types.ModuleType("maya.api")
    oma = types.ModuleType("maya.api.OpenMayaAnim")
    mcmds = types.ModuleType("maya.cmds")
    for name in ("ls",):
        setattr(mcmds, name, lambda *a, **k: ["camA", "camB"])
    maya.api, maya.cmds, api.OpenMaya, api.OpenMayaAnim = api, mcmds, om, oma
    return {"maya": maya, "maya.api": api, "maya.api.OpenMaya": om, "maya.api.OpenMayaAnim": oma, "maya.cmds": mcmds}


def test_maya_plugin_registers_rigfitFit_and_parses_flags(maya_core, monkeypatch):
    import importlib.util

    mods = fake_maya_modules(FakeCmds())
    for k, v in mods.items():
        monkeypatch.setitem(sys.modules, k, v)
    spec = importlib.util.spec_from_file_location("rigfit_maya", MAYA / "plug-ins" / "rigfit_maya.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    om = mods["maya.api.OpenMaya"]
    plugin.initializePlugin(object())
    assert "rigfitFit" in om.MFnPlugin.registered
    creator, syntax = om.MFnPlugin.registered["rigfitFit"]
    assert len(syntax().flags) == len(plugin.FLAGS) and len({f[0] for f in plugin.FLAGS}) == len(plugin.FLAGS)
    seen = {}

    def fake_fit(cmds, ops, **kw):
        seen.update(kw)
        return {"root": "actor_root"}

    monkeypatch.setattr(maya_core, "fit_and_build", fake_fit)
    cmd = creator()
    cmd.doIt({"-k": "/kp", "-w": 1000, "-ht": 800, "-f": 1200.0, "-pv": True, "-n": "actor", "-v": True})
    assert seen == {"keypoints": "/kp", "width": 1000, "height": 800, "focal": 1200.0, "preview": True, "name": "actor", "views": ["camA", "camB"]}
    assert cmd.result == "actor_root"
    plugin.uninitializePlugin(object())
    assert "rigfitFit" not in om.MFnPlugin.registered
