"""mod_forum (mod/forum/backup/moodle2/backup_forum_stepslib.php and
backup_forum_activity_task.class.php): the forum, and as user data its
discussions with their posts (by id, so parents come first), ratings and
discussion subscriptions, then the forum's subscriptions, digests, read
posts, tracking preferences, post tags and whole-forum grades.

Annotations are declared in each element's field order: Moodle keeps one
annotation per final element and runs them in field order, which is the
order users reach inforef.xml.
"""

from __future__ import annotations

from coursevault.definitions.common import activity_structure
from coursevault.definitions.links import encode_patterns
from coursevault.definitions.tags import tags_enabled
from coursevault.structure.context import TaskContext
from coursevault.structure.elements import NO_ROWS, Nested, Param, Sql, Table, Up
from coursevault.structure.registry import LinkContext, Plugin, Step

FORUM_FIELDS = (
    "type", "name", "intro", "introformat", "duedate", "cutoffdate", "assessed",
    "assesstimestart", "assesstimefinish", "scale", "maxbytes", "maxattachments",
    "forcesubscribe", "trackingtype", "rsstype", "rssarticles", "timemodified", "warnafter",
    "blockafter", "blockperiod", "completiondiscussions", "completionreplies",
    "completionposts", "displaywordcount", "lockdiscussionafter", "grade_forum",
)
POST_FIELDS = (
    "parent", "userid", "created", "modified", "mailed", "subject", "message",
    "messageformat", "messagetrust", "attachment", "totalscore", "mailnow", "privatereplyto",
)


def forum_structure(ctx: TaskContext) -> Nested:
    """``backup_forum_activity_structure_step::define_structure``."""
    forum = Nested("forum", attrs=("id",), fields=FORUM_FIELDS,
                   source=Table("forum", {"id": Param("activityid")}),
                   annotate=[("scale", "scale")])
    forum.annotate_files("mod_forum", "intro", None)
    forum.add(
        Nested("discussions", children=[_discussion()]),
        Nested("subscriptions", children=[_per_forum(
            "subscription", ("userid",), "forum_subscriptions", "forum")]),
        Nested("digests", children=[_per_forum(
            "digest", ("userid", "maildigest"), "forum_digests", "forum")]),
        Nested("readposts", children=[_per_forum(
            "read", ("userid", "discussionid", "postid", "firstread", "lastread"),
            "forum_read", "forumid")]),
        Nested("trackedprefs", children=[_per_forum(
            "track", ("userid",), "forum_track_prefs", "forumid")]),
        Nested("poststags", children=[_post_tag(ctx)]),
        Nested("grades", children=[Nested(
            "grade", attrs=("id",),
            fields=("userid", "itemnumber", "grade", "timecreated", "timemodified"),
            source=Table("forum_grades", {"forum": Up("id")}), userinfo=True,
            annotate=[("user", "userid")])]),
    )
    return activity_structure(ctx, forum)


def _discussion() -> Nested:
    rating = Nested(
        "rating", attrs=("id",),
        fields=("component", "ratingarea", "scaleid", "value", "userid", "timecreated",
                "timemodified"),
        source=Table("rating", {"contextid": Param("contextid"), "component": "mod_forum",
                                "ratingarea": "post", "itemid": Up("id")}),
        compute={"value": lambda row, _ctx: row["rating"]},
        userinfo=True,
        annotate=[("scale", "scaleid"), ("user", "userid")],
    )
    post = Nested(
        "post", attrs=("id",), fields=POST_FIELDS,
        source=Table("forum_posts", {"discussion": Up("id")}, order="id ASC"),
        userinfo=True,
        annotate=[("user", "userid"), ("user", "privatereplyto")],
        children=[Nested("ratings", children=[rating])],
    )
    post.annotate_files("mod_forum", "post", "id")
    post.annotate_files("mod_forum", "attachment", "id")
    sub = Nested(
        "discussion_sub", attrs=("id",), fields=("userid", "preference"),
        source=Table("forum_discussion_subs", {"discussion": Up("id")}), userinfo=True,
        annotate=[("user", "userid")],
    )
    return Nested(
        "discussion", attrs=("id",),
        fields=("name", "firstpost", "userid", "groupid", "assessed", "timemodified",
                "usermodified", "timestart", "timeend", "pinned", "timelocked"),
        source=Table("forum_discussions", {"forum": Up("id")}), userinfo=True,
        annotate=[("user", "userid"), ("group", "groupid")],
        children=[Nested("posts", children=[post]),
                  Nested("discussion_subs", children=[sub])],
    )


def _per_forum(name: str, fields: tuple[str, ...], table: str, column: str) -> Nested:
    """A user-data list bound to the forum, annotating its users."""
    return Nested(name, attrs=("id",), fields=fields,
                  source=Table(table, {column: Up("id")}), userinfo=True,
                  annotate=[("user", "userid")])


def _post_tag(ctx: TaskContext) -> Nested:
    tag = Nested("tag", attrs=("id",), fields=("itemid", "rawname"), userinfo=True)
    if tags_enabled(ctx, "mod_forum", "forum_posts"):
        tag.set_source(Sql(
            "SELECT t.id, ti.itemid, t.rawname FROM {tag} t"
            " JOIN {tag_instance} ti ON ti.tagid = t.id"
            " WHERE ti.itemtype = 'forum_posts' AND ti.component = 'mod_forum'"
            " AND ti.contextid = ?",
            [Param("contextid")],
        ))
    else:
        tag.set_source(NO_ROWS)
    return tag


_FORUM_LINKS = (
    (r"/mod/forum/index\.php\?id=([0-9]+)", r"$@FORUMINDEX*\1@$"),
    (r"/mod/forum/view\.php\?id=([0-9]+)", r"$@FORUMVIEWBYID*\1@$"),
    (r"/mod/forum/view\.php\?f=([0-9]+)", r"$@FORUMVIEWBYF*\1@$"),
    (r"/mod/forum/discuss\.php\?d=([0-9]+)(?:&amp;|&)parent=([0-9]+)",
     r"$@FORUMDISCUSSIONVIEWPARENT*\1*\2@$"),
    (r"/mod/forum/discuss\.php\?d=([0-9]+)#([0-9]+)", r"$@FORUMDISCUSSIONVIEWINSIDE*\1*\2@$"),
    (r"/mod/forum/discuss\.php\?d=([0-9]+)", r"$@FORUMDISCUSSIONVIEW*\1@$"),
)


def encode_links(content: str, link: LinkContext) -> str:
    """``backup_forum_activity_task::encode_content_links``, in its order."""
    return encode_patterns(content, link, _FORUM_LINKS)


PLUGIN = Plugin(
    "forum",
    steps=lambda ctx: [Step("forum.xml", build=forum_structure)],
    encode_links=encode_links,
    extra={"advanced_grading": True},
)
