"""rigfit Maya plug-in (Python API 2.0): registers the ``rigfitFit`` command.

    cmds.loadPlugin("rigfit_maya.py")
    cmds.rigfitFit(keypoints="/shots/a/keypoints", width=1920, height=1080, focal=1500, footage="/shots/a/plate.mov")
    cmds.rigfitFit(views=True)   # the selected cameras are calibrated views (attribute rigfitKeypoints)

All logic lives in scripts/rigfit_maya_core.py; this file only parses flags and supplies the Maya
API calls for bulk data (mesh creation, skin weights, animation curves).
"""

import maya.api.OpenMaya as om
import maya.api.OpenMayaAnim as oma
import maya.cmds as cmds

import rigfit_maya_core as core

COMMAND = "rigfitFit"

# (short, long, type): type None = a boolean flag without argument.
FLAGS = [
    ("-k", "-keypoints", om.MSyntax.kString),
    ("-w", "-width", om.MSyntax.kLong),
    ("-ht", "-height", om.MSyntax.kLong),
    ("-f", "-focal", om.MSyntax.kDouble),
    ("-fps", "-framesPerSecond", om.MSyntax.kDouble),
    ("-t", "-track", om.MSyntax.kLong),
    ("-fs", "-frameStart", om.MSyntax.kLong),
    ("-fc", "-frameCount", om.MSyntax.kLong),
    ("-sf", "-sceneFrame", om.MSyntax.kLong),
    ("-pv", "-preview", None),
    ("-n", "-name", om.MSyntax.kString),
    ("-ft", "-footage", om.MSyntax.kString),
    ("-v", "-views", None),
    ("-b", "-body", om.MSyntax.kString),
]

# flag long name -> fit_and_build keyword
KEYWORDS = {
    "-keypoints": "keypoints", "-width": "width", "-height": "height", "-focal": "focal", "-framesPerSecond": "fps",
    "-track": "track", "-frameStart": "frame_start", "-frameCount": "frame_count", "-sceneFrame": "scene_frame",
    "-preview": "preview", "-name": "name", "-footage": "footage", "-body": "body",
}


def maya_useNewAPI():
    """Tells Maya this plug-in uses the Python API 2.0."""


class MayaOps:
    """The bulk operations through the Maya API."""

    def create_mesh(self, name, points, faces, parent):
        parent_obj = om.MSelectionList().add(parent).getDependNode(0)
        pts = om.MPointArray([om.MPoint(points[i], points[i + 1], points[i + 2]) for i in range(0, len(points), 3)])
        counts = om.MIntArray([3] * (len(faces) // 3))
        conn = om.MIntArray(list(faces))
        fn = om.MFnMesh()
        fn.create(pts, counts, conn, parent=parent_obj)
        transform = om.MFnDagNode(fn.parent(0)).fullPathName() if fn.parentCount() else fn.fullPathName()
        transform = cmds.rename(transform, name)
        cmds.sets(transform, edit=True, forceElement="initialShadingGroup")
        return transform

    def set_skin_weights(self, skin, mesh, joints, weights, num_joints):
        sel = om.MSelectionList()
        sel.add(skin)
        sel.add(mesh)
        fn = oma.MFnSkinCluster(sel.getDependNode(0))
        path = sel.getDagPath(1)
        comp = om.MFnSingleIndexedComponent().create(om.MFn.kMeshVertComponent)
        om.MFnSingleIndexedComponent(comp).setCompleteData(len(weights) // num_joints)
        infl = om.MIntArray(list(range(num_joints)))
        fn.setWeights(path, comp, infl, om.MDoubleArray(list(weights)), normalize=False)

    def set_keys(self, node, attr, times, values):
        plug = om.MSelectionList().add(node + "." + attr).getPlug(0)
        curve = oma.MFnAnimCurve()
        curve.create(plug)
        unit = om.MTime.uiUnit()
        curve.addKeys([om.MTime(t, unit) for t in times], list(values))


class RigfitFitCommand(om.MPxCommand):
    def __init__(self):
        om.MPxCommand.__init__(self)

    @staticmethod
    def creator():
        return RigfitFitCommand()

    @staticmethod
    def syntax():
        s = om.MSyntax()
        for short, long, kind in FLAGS:
            if kind is None:
                s.addFlag(short, long)
            else:
                s.addFlag(short, long, kind)
        return s

    def isUndoable(self):
        return False

    def doIt(self, args):
        db = om.MArgDatabase(self.syntax(), args)
        kwargs = parse_flags(db)
        if kwargs.pop("views", False):
            kwargs["views"] = cmds.ls(selection=True, type="transform") or []
        try:
            made = core.fit_and_build(cmds, MayaOps(), **kwargs)
        except core.rn.RigfitError as e:
            raise RuntimeError("rigfitFit: %s" % e)
        self.setResult(made["root"])


def parse_flags(db):
    kwargs = {}
    for short, long, kind in FLAGS:
        if not db.isFlagSet(short):
            continue
        key = KEYWORDS.get(long, long.lstrip("-"))
        if kind is None:
            kwargs[key] = True
        elif kind == om.MSyntax.kString:
            kwargs[key] = db.flagArgumentString(short, 0)
        elif kind == om.MSyntax.kLong:
            kwargs[key] = db.flagArgumentInt(short, 0)
        else:
            kwargs[key] = db.flagArgumentDouble(short, 0)
    return kwargs


def initializePlugin(plugin):
    om.MFnPlugin(plugin, "rigfit", "0.1.0", "Any").registerCommand(COMMAND, RigfitFitCommand.creator, RigfitFitCommand.syntax)


def uninitializePlugin(plugin):
    om.MFnPlugin(plugin).deregisterCommand(COMMAND)
