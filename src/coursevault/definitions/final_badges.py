"""badges.xml: ``backup_badges_structure_step`` (backup/moodle2/backup_stepslib.php).

The course's badges but archived ones, with their criteria and parameters
(only when activities are included), endorsement, alignments, related
badges, manual awards and tags; the badge image is annotated.
"""

from __future__ import annotations

from coursevault.structure.context import TaskContext
from coursevault.structure.elements import FileArea, Nested, Param, Sql, Table, Up

BADGE_STATUS_ARCHIVED = 4
_BADGE_FIELDS = (
    "name", "description", "timecreated", "timemodified", "usercreated", "usermodified",
    "issuername", "issuerurl", "issuercontact", "expiredate", "expireperiod", "type",
    "courseid", "message", "messagesubject", "attachment", "notification", "status",
    "nextcron", "version", "language", "imageauthorname", "imageauthoremail",
    "imageauthorurl", "imagecaption",
)


def badges_structure(ctx: TaskContext) -> Nested:
    badge = Nested(
        "badge", attrs=("id",), fields=_BADGE_FIELDS,
        source=Sql(f"SELECT * FROM {{badge}} WHERE courseid = ? "
                   f"AND status != {BADGE_STATUS_ARCHIVED}", [Param("courseid")]),
        annotate=[("user", "usercreated"), ("user", "usermodified")],
        files=[FileArea("badges", "badgeimage", "id")],
    )
    if ctx.run.setting("activities"):
        parameter = Nested(
            "parameter", attrs=("id",), fields=("critid", "name", "value", "criteriatype"),
            source=Sql("SELECT cp.*, c.criteriatype FROM {badge_criteria_param} cp "
                       "JOIN {badge_criteria} c ON cp.critid = c.id WHERE critid = ?",
                       [Up("id")]),
            annotate=[("criterion", "critid")])
        criterion = Nested(
            "criterion", attrs=("id",),
            fields=("badgeid", "criteriatype", "method", "description", "descriptionformat"),
            source=Table("badge_criteria", {"badgeid": Up("id")}),
            annotate=[("badge", "badgeid")],
            children=[Nested("parameters", children=[parameter])])
        badge.add(Nested("criteria", children=[criterion]))
    badge.add(
        Nested("endorsement", attrs=("id",),
               fields=("badgeid", "issuername", "issuerurl", "issueremail", "claimid",
                       "claimcomment", "dateissued"),
               source=Table("badge_endorsement", {"badgeid": Up("id")}),
               annotate=[("badge", "badgeid")]),
        Nested("alignments", children=[Nested(
            "alignment", attrs=("id",),
            fields=("badgeid", "targetname", "targeturl", "targetdescription",
                    "targetframework", "targetcode"),
            source=Table("badge_alignment", {"badgeid": Up("id")}),
            annotate=[("badge", "badgeid")])]),
        Nested("relatedbadges", children=[Nested(
            "relatedbadge", attrs=("id",), fields=("badgeid", "relatedbadgeid"),
            source=Table("badge_related", {"badgeid": Up("id")}),
            annotate=[("badge", "badgeid"), ("badge", "relatedbadgeid")])]),
        Nested("manual_awards", children=[Nested(
            "manual_award", attrs=("id",),
            fields=("badgeid", "recipientid", "issuerid", "issuerrole", "datemet"),
            source=Table("badge_manual_award", {"badgeid": Up("id")}),
            annotate=[("badge", "badgeid"), ("user", "recipientid"), ("user", "issuerid"),
                      ("role", "issuerrole")])]),
        Nested("tags", children=[Nested(
            "tag", attrs=("id",), fields=("name", "rawname"),
            source=Sql("SELECT t.id, t.name, t.rawname FROM {tag} t "
                       "JOIN {tag_instance} ti ON ti.tagid = t.id "
                       "WHERE ti.itemtype = 'badge' AND ti.itemid = ?", [Up("id")]))]),
    )
    return Nested("badges", children=[badge])
