"""rigfit for Blender: fit an animated SMPL rig to 2D keypoints of your footage.

A thin shim over rigfit's C ABI (loaded with ctypes from ``lib/`` next to this file, or from
``$RIGFIT_LIB``). Works as a Blender 4.2+ extension (blender_manifest.toml) and as a classic
add-on (bl_info). The sidebar panel (3D Viewport > N > rigfit) takes a keypoint file / folder,
the footage, the camera (from intrinsics, the scene camera, or several selected cameras as
views) and a frame range; Fit runs in the background with a progress bar (Esc cancels).
"""

bl_info = {
    "name": "rigfit",
    "author": "rigfit developers",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D Viewport > Sidebar > rigfit",
    "description": "Fit an animated SMPL rig to 2D keypoints of footage",
    "category": "Animation",
}

import os
import tempfile
import threading

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from . import build
from . import rigfit_native as rn

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

_SESSIONS = {}
#: Fitted motions by armature name (this Blender session); the JSON copy in a Text datablock
#: (``armature["rigfit_motion"]``) survives saving the .blend.
MOTIONS = {}


def library():
    return rn.load(rn.default_library_path(PACKAGE_DIR))


def session(body="", prior=""):
    lib = library()
    key = (id(lib), body or None, prior or None)
    s = _SESSIONS.get(key)
    if s is None:
        s = rn.Session(lib, bpy.path.abspath(body) if body else None, bpy.path.abspath(prior) if prior else None)
        _SESSIONS[key] = s
    return s


class RigfitSettings(bpy.types.PropertyGroup):
    keypoints: StringProperty(name="Keypoints", subtype="FILE_PATH", description="Keypoint file, folder of per-frame files, or pattern (OpenPose, COCO, MMPose, MediaPipe JSON)")
    footage: StringProperty(name="Footage", subtype="FILE_PATH", description="Image or movie shown behind the camera")
    camera_source: EnumProperty(
        name="Camera",
        items=[
            ("INTRINSICS", "From intrinsics", "A new camera at the footage's viewpoint from the focal length and image size"),
            ("SCENE", "Scene camera", "The scene camera is the footage's camera; the rig is placed in front of it"),
            ("VIEWS", "Selected cameras", "Every selected camera is a calibrated view; each needs a 'rigfit_keypoints' custom property with its keypoint path"),
        ],
        default="INTRINSICS",
    )
    focal_px: FloatProperty(name="Focal (px)", default=0.0, min=0.0, description="Focal length in pixels; 0 = ScoreHMR's 5000")
    width: IntProperty(name="Width", default=1920, min=1)
    height: IntProperty(name="Height", default=1080, min=1)
    track_id: IntProperty(name="Track", default=-1, min=-1, description="Person track id; -1 = the most confident person per frame")
    frame_start: IntProperty(name="First", default=0, min=0, description="First keypoint frame to fit (0 = the file's first)")
    frame_count: IntProperty(name="Count", default=0, min=0, description="Frames to fit (0 = all)")
    scene_frame: IntProperty(name="At frame", default=1, description="Scene frame of the first fitted frame")
    fps: FloatProperty(name="FPS", default=0.0, min=0.0, description="Frame rate of the footage; 0 = the scene's")
    quality: EnumProperty(name="Quality", items=[("DEFAULT", "Default", "ScoreHMR's settings"), ("PREVIEW", "Preview", "A few network evaluations: quick, rough")], default="DEFAULT")
    seed: IntProperty(name="Seed", default=0, min=0)
    body: StringProperty(name="Body model", subtype="FILE_PATH", description="SMPL .npz (smplx naming); empty = the built-in body")
    prior: StringProperty(name="Prior", subtype="FILE_PATH", description="Prior .safetensors; empty = the built-in prior")
    running: BoolProperty(default=False)
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(default="")


class FitJob:
    """One fit, runnable synchronously or on a worker thread; ``cancel`` stops it through the
    library's progress callback."""

    def __init__(self, run):
        self._run_fit = run
        self.stage, self.done, self.total = "", 0, 1
        self.cancel = False
        self.result = None
        self.error = None
        self.thread = None

    def progress(self, stage, done, total):
        self.stage, self.done, self.total = stage, done, max(total, 1)
        return not self.cancel

    def run(self):
        try:
            self.result = self._run_fit(self.progress)
        except Exception as e:  # reported on the main thread
            self.error = e

    def start(self):
        self.thread = threading.Thread(target=self.run, name="rigfit fit", daemon=True)
        self.thread.start()

    @property
    def finished(self):
        return self.thread is None or not self.thread.is_alive()

    @property
    def fraction(self):
        return min(1.0, self.done / self.total)


def _scene_fps(scene):
    return scene.render.fps / scene.render.fps_base


def _camera_pose_yup(cam, root_matrix):
    """Camera-to-world pose of ``cam`` in the rig root's (Y-up) frame, rows flattened."""
    m = root_matrix.inverted() @ cam.matrix_world.normalized()
    rot = [m[i][j] for i in range(3) for j in range(3)]
    pos = [m[0][3], m[1][3], m[2][3]]
    return rot, pos


def _view_of_camera(lib, scene, cam, pose=None):
    d = cam.data
    return rn.view_from_film(lib, d.lens, d.sensor_width, d.shift_x, d.shift_y, scene.render.resolution_x, scene.render.resolution_y, name=cam.name, pose=pose)


def prepare(context):
    """Reads the settings (main thread) and returns ``(job, plan)``: the job fits on any thread,
    the plan says how to build the result."""
    scene = context.scene
    st = scene.rigfit
    sess = session(st.body, st.prior)
    lib = sess.lib
    opts = rn.fit_options(lib, "preview" if st.quality == "PREVIEW" else "default", seed=st.seed)
    fps = st.fps if st.fps > 0 else _scene_fps(scene)
    st_track, st_start, st_count = st.track_id, st.frame_start, st.frame_count
    plan = {"session": sess, "root_matrix": None, "make_cameras": True, "footage": st.footage, "frame0": st.scene_frame}
    if st.camera_source == "VIEWS":
        cams = [o for o in context.selected_objects if o.type == "CAMERA"]
        if not cams:
            raise rn.RigfitError(rn.RIGFIT_ERR_INPUT, "select the cameras that are views (each with a 'rigfit_keypoints' property)")
        paths, views = [], []
        for c in cams:
            p = c.get("rigfit_keypoints")
            if not p:
                raise rn.RigfitError(rn.RIGFIT_ERR_INPUT, "camera %s has no 'rigfit_keypoints' custom property" % c.name)
            paths.append(bpy.path.abspath(p))
            views.append(_view_of_camera(lib, scene, c, _camera_pose_yup(c, build.Y_UP_TO_Z_UP)))
        plan["make_cameras"] = False

        def run(progress):
            return sess.fit_files_views(paths, views, fps, st_track, st_start, st_count, opts, progress)
    else:
        path = bpy.path.abspath(st.keypoints)
        if not st.keypoints:
            raise rn.RigfitError(rn.RIGFIT_ERR_INPUT, "set a keypoint file or folder")
        if st.camera_source == "SCENE":
            cam = scene.camera
            if cam is None:
                raise rn.RigfitError(rn.RIGFIT_ERR_INPUT, "the scene has no camera")
            views = [_view_of_camera(lib, scene, cam)]
            plan["root_matrix"] = cam.matrix_world.normalized()
            plan["make_cameras"] = False

            def run(progress):
                return sess.fit_files_views([path], views, fps, st_track, st_start, st_count, opts, progress)
        else:
            w, h, focal = st.width, st.height, st.focal_px

            def run(progress):
                return sess.fit_files(path, w, h, focal, fps, st_track, st_start, st_count, opts, progress)
    return FitJob(run), plan


def finish(context, job, plan, name="rigfit"):
    """Builds the scene from a finished job; returns the build dict."""
    if job.error is not None:
        raise job.error
    motion = job.result
    made = build.build_scene(context, plan["session"], motion, name=name, frame0=plan["frame0"], root_matrix=plan["root_matrix"], footage=plan["footage"], make_cameras=plan["make_cameras"])
    arm = made["armature"]
    MOTIONS[arm.name] = motion
    tmp = os.path.join(tempfile.mkdtemp(prefix="rigfit_"), "motion.json")
    motion.save_json(tmp)
    with open(tmp, encoding="utf-8") as f:
        text = bpy.data.texts.new(arm.name + "_motion.json")
        text.write(f.read())
    arm["rigfit_motion"] = text.name
    return made


def motion_of(arm):
    """The motion behind an armature: this session's, or reloaded from its Text datablock."""
    m = MOTIONS.get(arm.name)
    if m is not None:
        return m
    text = bpy.data.texts.get(arm.get("rigfit_motion", ""))
    if text is None:
        raise rn.RigfitError(rn.RIGFIT_ERR_INPUT, "%s was not made by rigfit" % arm.name)
    tmp = os.path.join(tempfile.mkdtemp(prefix="rigfit_"), "motion.json")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text.as_string())
    st = bpy.context.scene.rigfit
    m = session(st.body, st.prior).load_motion(tmp)
    MOTIONS[arm.name] = m
    return m


class RIGFIT_OT_fit(bpy.types.Operator):
    """Fit the rig to the keypoints (Esc cancels)"""

    bl_idname = "rigfit.fit"
    bl_label = "Fit"
    bl_options = {"REGISTER", "UNDO"}

    _job = None
    _plan = None
    _timer = None

    def execute(self, context):
        try:
            job, plan = prepare(context)
            job.run()
            return self._finish(context, job, plan)
        except rn.RigfitError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}

    def _finish(self, context, job, plan):
        st = context.scene.rigfit
        st.running = False
        if isinstance(job.error, rn.Cancelled):
            st.status = "cancelled"
            self.report({"WARNING"}, "rigfit: fit cancelled")
            return {"CANCELLED"}
        try:
            made = finish(context, job, plan)
        except rn.RigfitError as e:
            st.status = str(e)
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        m = MOTIONS[made["armature"].name]
        st.progress = 1.0
        st.status = "%d frames, mean reprojection %.1f px" % (m.num_frames, m.mean_reprojection_px)
        self.report({"INFO"}, "rigfit: " + st.status)
        return {"FINISHED"}

    def invoke(self, context, event):
        st = context.scene.rigfit
        if st.running:
            self.report({"WARNING"}, "rigfit: a fit is already running")
            return {"CANCELLED"}
        try:
            self._job, self._plan = prepare(context)
        except rn.RigfitError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        st.running, st.progress, st.status = True, 0.0, "starting"
        self._job.start()
        wm = context.window_manager
        wm.progress_begin(0, 1000)
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC":
            job.cancel = True
        if event.type == "TIMER":
            st = context.scene.rigfit
            st.progress = job.fraction
            st.status = "%s (%d / %d)" % (job.stage, job.done, job.total)
            context.window_manager.progress_update(int(1000 * job.fraction))
            for area in context.screen.areas if context.screen else []:
                if area.type == "VIEW_3D":
                    area.tag_redraw()
            if job.finished:
                wm = context.window_manager
                wm.event_timer_remove(self._timer)
                wm.progress_end()
                return self._finish(context, job, self._plan)
        return {"PASS_THROUGH"}


class _ExportBase:
    def execute(self, context):
        arm = context.active_object
        if arm is None or arm.type != "ARMATURE":
            self.report({"ERROR"}, "select a rig made by rigfit")
            return {"CANCELLED"}
        try:
            m = motion_of(arm)
            getattr(m, self.writer)(bpy.path.abspath(self.filepath))
        except rn.RigfitError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, "rigfit: wrote " + self.filepath)
        return {"FINISHED"}


class RIGFIT_OT_export_glb(_ExportBase, bpy.types.Operator, ExportHelper):
    """Export the fitted rig as glTF binary (.glb) through rigfit"""

    bl_idname = "rigfit.export_glb"
    bl_label = "Export .glb"
    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb", options={"HIDDEN"})
    writer = "write_glb"


class RIGFIT_OT_export_usd(_ExportBase, bpy.types.Operator, ExportHelper):
    """Export the fitted rig as USD (UsdSkel, .usda) through rigfit"""

    bl_idname = "rigfit.export_usd"
    bl_label = "Export .usda"
    filename_ext = ".usda"
    filter_glob: StringProperty(default="*.usda", options={"HIDDEN"})
    writer = "write_usda"


class RIGFIT_PT_panel(bpy.types.Panel):
    bl_label = "rigfit"
    bl_idname = "RIGFIT_PT_panel"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "rigfit"

    def draw(self, context):
        st = context.scene.rigfit
        col = self.layout.column()
        col.prop(st, "camera_source")
        if st.camera_source != "VIEWS":
            col.prop(st, "keypoints")
        else:
            col.label(text="Views: selected cameras with 'rigfit_keypoints'")
        col.prop(st, "footage")
        if st.camera_source == "INTRINSICS":
            row = col.row(align=True)
            row.prop(st, "width")
            row.prop(st, "height")
            col.prop(st, "focal_px")
        box = col.box()
        box.label(text="Frames")
        row = box.row(align=True)
        row.prop(st, "frame_start")
        row.prop(st, "frame_count")
        box.prop(st, "scene_frame")
        box.prop(st, "fps")
        col.prop(st, "track_id")
        col.prop(st, "quality")
        col.prop(st, "body")
        if st.running:
            col.prop(st, "progress", text=st.status or "fitting", slider=True)
            col.label(text="Esc cancels")
        else:
            col.operator(RIGFIT_OT_fit.bl_idname, icon="ARMATURE_DATA")
            if st.status:
                col.label(text=st.status)
        row = col.row(align=True)
        row.operator(RIGFIT_OT_export_glb.bl_idname)
        row.operator(RIGFIT_OT_export_usd.bl_idname)


CLASSES = (RigfitSettings, RIGFIT_OT_fit, RIGFIT_OT_export_glb, RIGFIT_OT_export_usd, RIGFIT_PT_panel)


def register():
    for c in CLASSES:
        bpy.utils.register_class(c)
    bpy.types.Scene.rigfit = PointerProperty(type=RigfitSettings)


def unregister():
    del bpy.types.Scene.rigfit
    for c in reversed(CLASSES):
        bpy.utils.unregister_class(c)
