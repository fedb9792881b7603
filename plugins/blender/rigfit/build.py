"""Turns a rigfit motion into Blender data: a rig root, an armature with the 24 SMPL joints, the
skinned body mesh, bulk keyframes and the footage camera. No math: every number comes from the
library (rest joints and mesh of the fitted shape, local quaternions, root translations, camera
poses and film backs); Blender's own mathutils only assembles matrices.

Axes: rigfit's world is Y-up. The rig root (an empty) carries the Y-up -> Z-up change (a quarter
turn about X), or, for a fit from the scene camera, that camera's own frame. Under it the
armature and the cameras are in rigfit's coordinates, so the bones' rest orientation is the
identity in armature space (each bone points along +Y, roll 0) and the pose quaternions are
rigfit's local rotations as they are.
"""

import os

import bpy
from mathutils import Matrix

from . import rigfit_native as rn

#: Length of every bone (metres); bones point along +Y so their rest orientation is the identity.
BONE_LENGTH = 0.08

#: Y-up (rigfit, glTF) to Z-up (Blender): a quarter turn about X.
Y_UP_TO_Z_UP = Matrix.Rotation(1.5707963267948966, 4, "X")

LINEAR = 1  # index of 'LINEAR' in Keyframe.interpolation's enum


def _link(context, obj):
    context.scene.collection.objects.link(obj)
    return obj


def _new_fcurve(action, owner, data_path, index, group, layered):
    """An F-curve on ``owner``'s action: the layered API (Blender 4.4+, the only one in 5.x) or
    the legacy ``action.fcurves``."""
    if layered:
        return action.fcurve_ensure_for_datablock(owner, data_path, index=index)
    return action.fcurves.new(data_path, index=index, action_group=group)


def use_layered_actions():
    """Whether this Blender has the layered-action API (4.4+; ``Action.fcurves`` is gone in 5.0)."""
    return bpy.app.version >= (4, 4, 0)


def key_channels(action, owner, data_path, group, values, stride, offset, count, frames, layered):
    """Writes ``count`` channels of ``data_path`` in bulk: channel k at frame i is
    ``values[i * stride + offset + k]``."""
    n = len(frames)
    for k in range(count):
        fc = _new_fcurve(action, owner, data_path, k, group, layered)
        co = [0.0] * (2 * n)
        co[0::2] = frames
        co[1::2] = values[offset + k::stride][:n]
        fc.keyframe_points.add(n)
        fc.keyframe_points.foreach_set("co", co)
        fc.keyframe_points.foreach_set("interpolation", [LINEAR] * n)
        fc.update()


def build_armature(context, name, root, lib, motion):
    names = rn.joint_names(lib)
    parents = rn.joint_parents(lib)
    rest = motion.rest_joints()
    data = bpy.data.armatures.new(name)
    arm = _link(context, bpy.data.objects.new(name, data))
    arm.parent = root
    prev_active = context.view_layer.objects.active
    context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for j, bname in enumerate(names):
        eb = data.edit_bones.new(bname)
        head = rest[3 * j:3 * j + 3]
        eb.head = head
        eb.tail = (head[0], head[1] + BONE_LENGTH, head[2])
        eb.roll = 0.0
        if parents[j] >= 0:
            eb.parent = bones[parents[j]]
        bones.append(eb)
    bpy.ops.object.mode_set(mode="OBJECT")
    context.view_layer.objects.active = prev_active if prev_active is not None else arm
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"
    return arm


def build_mesh(context, name, arm, session, motion):
    lib = session.lib
    names = rn.joint_names(lib)
    verts = motion.rest_vertices()
    faces = session.faces()
    me = bpy.data.meshes.new(name)
    nv, nf = len(verts) // 3, len(faces) // 3
    me.vertices.add(nv)
    me.vertices.foreach_set("co", verts)
    me.loops.add(3 * nf)
    me.loops.foreach_set("vertex_index", faces)
    me.polygons.add(nf)
    me.polygons.foreach_set("loop_start", range(0, 3 * nf, 3))
    me.update()
    me.validate()
    obj = _link(context, bpy.data.objects.new(name, me))
    obj.parent = arm
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = arm
    weights = session.skin_weights()
    nj = len(names)
    for j, bname in enumerate(names):
        vg = obj.vertex_groups.new(name=bname)
        by_weight = {}
        col = weights[j::nj]
        for v, w in enumerate(col):
            if w > 0.0:
                by_weight.setdefault(w, []).append(v)
        for w, idx in by_weight.items():
            vg.add(idx, w, "REPLACE")
    return obj


def key_motion(arm, lib, motion, frame0, layered=None):
    """Keys every bone's quaternion and the root's location on frames ``frame0 ..``."""
    if layered is None:
        layered = use_layered_actions()
    names = rn.joint_names(lib)
    nj = len(names)
    f = motion.num_frames
    frames = [float(frame0 + i) for i in range(f)]
    quats = motion.quaternions()
    trans = motion.translations()
    action = bpy.data.actions.new(arm.name + "_action")
    arm.animation_data_create()
    arm.animation_data.action = action
    for j, bname in enumerate(names):
        path = 'pose.bones["%s"].rotation_quaternion' % bname
        key_channels(action, arm, path, bname, quats, 4 * nj, 4 * j, 4, frames, layered)
    key_channels(action, arm, 'pose.bones["%s"].location' % names[0], names[0], trans, 3, 0, 3, frames, layered)
    ad = arm.animation_data
    if hasattr(ad, "action_slot") and ad.action_slot is None and len(action.slots):
        # 4.4+ with the legacy API: action.fcurves.new makes a "Legacy Slot" it does not assign.
        ad.action_slot = action.slots[0]
    return action


def _pose_matrix(view):
    r, p = view.rotation, view.position
    return Matrix(((r[0], r[1], r[2], p[0]), (r[3], r[4], r[5], p[1]), (r[6], r[7], r[8], p[2]), (0.0, 0.0, 0.0, 1.0)))


def set_film(cam_data, lib, view):
    film = rn.view_film(lib, view, 36.0)
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = film.sensor_width_mm
    cam_data.sensor_height = film.sensor_height_mm
    cam_data.lens = film.focal_mm
    cam_data.shift_x = film.shift_x
    cam_data.shift_y = film.shift_y


def set_background(cam_data, footage, frame0, frames):
    """Shows the footage (image or movie) behind the camera view (viewport only)."""
    if not footage:
        return None
    path = bpy.path.abspath(footage)
    if not os.path.exists(path):
        raise rn.RigfitError(rn.RIGFIT_ERR_IO, "footage not found: %s" % path)
    img = bpy.data.images.load(path, check_existing=True)
    cam_data.show_background_images = True
    bg = cam_data.background_images.new()
    bg.image = img
    bg.image_user.frame_start = frame0
    bg.image_user.frame_duration = frames
    bg.alpha = 1.0
    return img


def build_cameras(context, name, root, lib, motion, frame0):
    """One Blender camera per motion camera, in rigfit's coordinates under the root."""
    cams = []
    for c in range(motion.num_cameras):
        view = motion.camera(c, 0)
        cname = "%s_%s" % (name, view.name.decode() if view.name else "camera%d" % c)
        data = bpy.data.cameras.new(cname)
        set_film(data, lib, view)
        obj = _link(context, bpy.data.objects.new(cname, data))
        obj.parent = root
        obj.rotation_mode = "QUATERNION"
        obj.matrix_basis = _pose_matrix(view)
        if not motion.camera_is_static(c):
            for i in range(motion.num_frames):
                obj.matrix_basis = _pose_matrix(motion.camera(c, i))
                obj.keyframe_insert("location", frame=frame0 + i)
                obj.keyframe_insert("rotation_quaternion", frame=frame0 + i)
        cams.append((obj, view))
    return cams


def build_scene(context, session, motion, name="rigfit", frame0=1, root_matrix=None, footage=None, make_cameras=True, layered=None):
    """Builds the rig for ``motion`` and returns ``{"root", "armature", "mesh", "cameras"}``.

    ``root_matrix``: the root's world matrix (default: Y-up -> Z-up at the origin; a fit from a
    single scene camera passes that camera's matrix, and no camera is created)."""
    lib = session.lib
    scene = context.scene
    root = _link(context, bpy.data.objects.new(name + "_root", None))
    root.empty_display_type = "ARROWS"
    root.empty_display_size = 0.3
    root.matrix_world = root_matrix if root_matrix is not None else Y_UP_TO_Z_UP
    arm = build_armature(context, name, root, lib, motion)
    mesh = build_mesh(context, name + "_body", arm, session, motion)
    key_motion(arm, lib, motion, frame0, layered)
    f = motion.num_frames
    scene.frame_start = frame0
    scene.frame_end = frame0 + f - 1
    fps = motion.fps
    scene.render.fps = max(1, int(round(fps)))
    scene.render.fps_base = scene.render.fps / fps
    cams = []
    if make_cameras:
        cams = build_cameras(context, name, root, lib, motion, frame0)
        if cams:
            scene.camera = cams[0][0]
            scene.render.resolution_x = cams[0][1].width
            scene.render.resolution_y = cams[0][1].height
            scene.render.resolution_percentage = 100
    target = scene.camera
    if footage and target is not None and target.type == "CAMERA":
        set_background(target.data, footage, frame0, f)
    scene.frame_set(frame0)
    return {"root": root, "armature": arm, "mesh": mesh, "cameras": [c for c, _ in cams]}
