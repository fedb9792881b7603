"""rigfit for Maya: everything the ``rigfitFit`` command does, outside the Maya calls.

The plug-in (plug-ins/rigfit_maya.py) passes ``cmds`` (maya.cmds) and an ``ops`` object with the
three bulk operations that need the Maya API (create a mesh from arrays, set skin weights, key a
curve from arrays); tests pass fakes. No math here: rest joints and mesh, Euler angles (the
rotate channels of joints with zero joint orient, rotate order xyz), pelvis positions and camera
film backs all come from the rigfit library through its C ABI (rigfit_native.py).

Scene layout (Maya is Y-up like rigfit; a Z-up scene gets the root group turned 90 degrees
about X):

    <name>_root (group)
      <name>_pelvis ... 24 joints named after SMPL, zero joint orient
      <name>_body (mesh, skinCluster on the 24 joints)
      <name>_camera (the footage camera, with the footage as image plane)
"""

import os

import rigfit_native as rn

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INCH_MM = 25.4  # Maya film backs are in inches


def library():
    """The native library: ``$RIGFIT_LIB``, else ``<module>/lib/<library file>``."""
    return rn.load(rn.default_library_path(MODULE_DIR))


_SESSIONS = {}


def session(lib, body=None):
    key = (id(lib), body or None)
    if key not in _SESSIONS:
        _SESSIONS[key] = rn.Session(lib, body or None, None)
    return _SESSIONS[key]


def progress_callback(cmds, title="rigfit"):
    """A progress function over Maya's progress window (Esc cancels)."""
    state = {"open": False}

    def progress(stage, done, total):
        if not state["open"]:
            cmds.progressWindow(title=title, progress=0, maxValue=1000, status=stage, isInterruptable=True)
            state["open"] = True
        if cmds.progressWindow(query=True, isCancelled=True):
            return False
        cmds.progressWindow(edit=True, progress=int(1000 * done / max(total, 1)), status=stage)
        return True

    def close():
        if state["open"]:
            cmds.progressWindow(endProgress=True)
            state["open"] = False

    progress.close = close
    return progress


def camera_view(lib, cmds, camera, root, width, height):
    """A calibrated rigfit view of a Maya camera, its pose in the rig root's frame (Maya computes
    the relative matrix through a temporary locator under the root)."""
    shape = camera
    if cmds.nodeType(camera) == "transform":
        shape = cmds.listRelatives(camera, shapes=True, type="camera")[0]
    else:
        camera = cmds.listRelatives(camera, parent=True)[0]
    focal = cmds.getAttr(shape + ".focalLength")
    hfa = cmds.getAttr(shape + ".horizontalFilmAperture")
    hfo = cmds.getAttr(shape + ".horizontalFilmOffset")
    vfo = cmds.getAttr(shape + ".verticalFilmOffset")
    loc = cmds.spaceLocator(name="rigfit_tmp_locator")[0]
    try:
        loc = cmds.parent(loc, root)[0]
        cmds.matchTransform(loc, camera)
        m = cmds.xform(loc, query=True, matrix=True, objectSpace=True)
    finally:
        cmds.delete(loc)
    # Maya matrices are row-vector (rows = axes, last row = translation): the column-vector
    # camera-to-world rotation is its transpose (a layout change).
    rot = [m[0], m[4], m[8], m[1], m[5], m[9], m[2], m[6], m[10]]
    pos = [m[12], m[13], m[14]]
    return rn.view_from_film(lib, focal, hfa * INCH_MM, hfo / hfa, vfo / hfa, width, height, name=camera, pose=(rot, pos))


def make_root(cmds, name):
    root = cmds.group(empty=True, name=name + "_root")
    return root


def build_joints(cmds, lib, motion, root, name):
    """24 joints at the rest joints of the fitted shape, parented as SMPL, zero joint orient.
    Built while the root is still the identity, so absolute positions are root-space."""
    names = rn.joint_names(lib)
    parents = rn.joint_parents(lib)
    rest = motion.rest_joints()
    joints = []
    for j, jname in enumerate(names):
        cmds.select(joints[parents[j]] if parents[j] >= 0 else root, replace=True)
        jn = cmds.joint(name="%s_%s" % (name, jname), position=tuple(rest[3 * j:3 * j + 3]), absolute=True)
        cmds.setAttr(jn + ".rotateOrder", 0)  # xyz
        joints.append(jn)
    cmds.select(clear=True)
    return joints


def build_body(cmds, ops, session, motion, root, joints, name):
    mesh = ops.create_mesh(name + "_body", motion.rest_vertices(), session.faces(), root)
    skin = cmds.skinCluster(joints, mesh, toSelectedBones=True, bindMethod=0, normalizeWeights=1, maximumInfluences=len(joints), name=name + "_skin")[0]
    ops.set_skin_weights(skin, mesh, joints, session.skin_weights(), len(joints))
    return mesh, skin


def key_motion(ops, lib, motion, joints, frame0):
    """Keys rotateX/Y/Z of every joint (Euler xyz, degrees) and the pelvis' translate (its
    world position, the rest root joint plus the root translation) on frames ``frame0 ..``."""
    f = motion.num_frames
    nj = len(joints)
    times = [float(frame0 + i) for i in range(f)]
    euler = motion.euler_xyz()
    for j, jn in enumerate(joints):
        for k, attr in enumerate(("rotateX", "rotateY", "rotateZ")):
            ops.set_keys(jn, attr, times, list(euler[3 * j + k::3 * nj][:f]))
    pelvis = motion.joints()
    for k, attr in enumerate(("translateX", "translateY", "translateZ")):
        ops.set_keys(joints[0], attr, times, list(pelvis[k::3 * nj][:f]))
    return times


def build_cameras(cmds, lib, motion, root, name, footage=None):
    cams = []
    for c in range(motion.num_cameras):
        view = motion.camera(c, 0)
        film = rn.view_film(lib, view, 36.0)
        cam, shape = cmds.camera(name="%s_camera%d" % (name, c))[:2]
        cam = cmds.parent(cam, root)[0]
        cmds.setAttr(shape + ".filmFit", 1)  # horizontal
        cmds.setAttr(shape + ".focalLength", film.focal_mm)
        cmds.setAttr(shape + ".horizontalFilmAperture", film.sensor_width_mm / INCH_MM)
        cmds.setAttr(shape + ".verticalFilmAperture", film.sensor_height_mm / INCH_MM)
        cmds.setAttr(shape + ".horizontalFilmOffset", film.shift_x * film.sensor_width_mm / INCH_MM)
        cmds.setAttr(shape + ".verticalFilmOffset", film.shift_y * film.sensor_width_mm / INCH_MM)
        r, p = view.rotation, view.position
        cmds.xform(cam, objectSpace=True, matrix=[r[0], r[3], r[6], 0.0, r[1], r[4], r[7], 0.0, r[2], r[5], r[8], 0.0, p[0], p[1], p[2], 1.0])
        if footage and c == 0:
            cmds.imagePlane(camera=cam, fileName=footage)
        cams.append(cam)
    return cams


def fit_and_build(cmds, ops, keypoints=None, width=1920, height=1080, focal=0.0, fps=0.0, track=-1, frame_start=0,
                  frame_count=0, scene_frame=1, preview=False, name="rigfit", footage=None, views=(), body=None, lib=None):
    """What ``rigfitFit`` does. ``views``: Maya cameras used as calibrated views (each with a
    ``rigfitKeypoints`` string attribute); otherwise ``keypoints`` seen by a camera of ``focal``
    pixels (0: ScoreHMR's 5000) for a ``width`` x ``height`` image. Returns the names made."""
    lib = lib or library()
    sess = session(lib, body)
    opts = rn.fit_options(lib, "preview" if preview else "default")
    if fps <= 0:
        fps = {"film": 24.0, "pal": 25.0, "ntsc": 30.0, "game": 15.0, "show": 48.0, "palf": 50.0, "ntscf": 60.0}.get(cmds.currentUnit(query=True, time=True), 24.0)
    root = make_root(cmds, name)
    progress = progress_callback(cmds)
    try:
        if views:
            paths = [cmds.getAttr(c + ".rigfitKeypoints") for c in views]
            z_up = cmds.upAxis(query=True, axis=True) == "z"
            cmds.setAttr(root + ".rotateX", 90.0 if z_up else 0.0)  # camera poses in the Y-up frame
            vs = [camera_view(lib, cmds, c, root, width, height) for c in views]
            cmds.setAttr(root + ".rotateX", 0.0)  # joints are placed with the root at identity
            motion = sess.fit_files_views(paths, vs, fps, track, frame_start, frame_count, opts, progress)
        else:
            if not keypoints:
                raise rn.RigfitError(rn.RIGFIT_ERR_INPUT, "rigfitFit: -keypoints is required without -views")
            motion = sess.fit_files(keypoints, width, height, focal, fps, track, frame_start, frame_count, opts, progress)
    except Exception:
        cmds.delete(root)
        raise
    finally:
        progress.close()
    joints = build_joints(cmds, lib, motion, root, name)
    mesh, skin = build_body(cmds, ops, sess, motion, root, joints, name)
    times = key_motion(ops, lib, motion, joints, scene_frame)
    cams = [] if views else build_cameras(cmds, lib, motion, root, name, footage)
    if cmds.upAxis(query=True, axis=True) == "z":
        cmds.setAttr(root + ".rotateX", 90.0)
    cmds.playbackOptions(minTime=times[0], maxTime=times[-1])
    return {"root": root, "joints": joints, "mesh": mesh, "skin": skin, "cameras": cams, "motion": motion}
