"""One demo course: its structure, activities and enrolments, as tool_generator lays them out.

gen_s (the reference site's course 2) is the model: assignments then pages
in section 1, the small-files resource and the forum in section 0, the big
files in section 1, every user a student through the manual enrolment
instance, a grade item per assignment under the course's grade category.
The extras (labels, urls, a folder, a glossary, a choice) go in section 2.
User data is ``demouserdata.py``'s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coursevault.moodledb.democontent import (
    EMPTY_SHA1,
    FileStore,
    file_bytes,
    paragraphs,
    pathname_hash,
    sentence,
)
from coursevault.moodledb.demouserdata import UserDataBuilder
from coursevault.moodledb.rowwriter import RowWriter
from coursevault.moodledb.sitedata import SiteData

if TYPE_CHECKING:
    from coursevault.moodledb.demosite import DemoSize

STUDENT_ROLE = 5
ADMIN_USER = 2


@dataclass(frozen=True)
class SiteIds:
    """Ids every course refers to."""

    system_context: int
    site_context: int
    category_id: int
    category_context: int
    modules: dict[str, int]


@dataclass
class CourseIds:
    """What the rows of one course refer to, filled as it is built."""

    course: int
    context: int
    context_path: str
    grade_category: int
    sections: list[int]
    sequences: dict[int, list[int]] = field(default_factory=dict)
    module_contexts: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class FileArea:
    """Where a file belongs: a context's component, file area, item and folder."""

    contextid: int
    component: str
    filearea: str
    itemid: int = 0
    filepath: str = "/"


def add_file(
    writer: RowWriter,
    data: SiteData,
    store: FileStore,
    area: FileArea,
    name: str,
    content: bytes,
    when: int,
    sortorder: int = 0,
) -> int:
    """A ``files`` row (a directory entry for ``.``) and its content in the file store."""
    is_dir = name == "."
    text = name.endswith(".txt")
    where = area.filepath + name
    return writer.add(
        "files",
        data.row(
            "files:dir" if is_dir else "files:content",
            id=None,
            contenthash=EMPTY_SHA1 if is_dir else store.put(content),
            pathnamehash=pathname_hash(
                area.contextid, area.component, area.filearea, area.itemid, where
            ),
            contextid=area.contextid,
            component=area.component,
            filearea=area.filearea,
            itemid=area.itemid,
            filepath=area.filepath,
            filename=name,
            filesize=len(content),
            mimetype=None if is_dir else ("text/plain" if text else "application/octet-stream"),
            sortorder=sortorder,
            timecreated=when,
            timemodified=when,
        ),
    )


def add_context(writer: RowWriter, level: int, instance: int, parent_path: str, depth: int) -> int:
    """A context row, whose path is its parent's and its own id (Moodle's /1/3/11)."""
    ctx = writer.next_id("context")
    row: dict[str, object] = {"id": ctx, "contextlevel": level, "instanceid": instance}
    row.update(path=f"{parent_path}/{ctx}", depth=depth, locked=0)
    return writer.add("context", row)


class CourseBuilder:
    """Writes one course through a ``RowWriter``; ``module_count`` says how many modules."""

    def __init__(
        self,
        writer: RowWriter,
        data: SiteData,
        store: FileStore,
        rng: random.Random,
        site: SiteIds,
        time: int,
    ) -> None:
        self.writer, self.data, self.store, self.rng = writer, data, store, rng
        self.site = site
        self.time = time
        self.module_count = 0
        self.grade_sortorder = 1

    def build(self, number: int, size: DemoSize, users: list[int]) -> int:
        ids = self._course(number, size)
        self._enrol(ids, users)
        assigns = [self._assign(ids, i) for i in range(1, size.assigns + 1)]
        for i in range(1, size.pages + 1):
            self._page(ids, i)
        self._resource(ids, 0, "Small files", size.small_files, size.small_file_size, 0)
        for i in range(size.big_files):
            self._resource(ids, i + 1, f"Big file {i}", 1, size.big_file_size, 1)
        forum = self._forum(ids)
        glossary, choice = self._extras(ids, size)
        userdata = UserDataBuilder(self.writer, self.data, self.rng, self.time + 300)
        userdata.forum_discussions(ids.course, forum, users, size)
        for assign_id, grade_item in assigns:
            userdata.assign_work(assign_id, grade_item, users)
        userdata.glossary_entries(glossary, users, size.glossary_entries)
        userdata.choice_answers(choice, users, size.choice_options)
        self._sections(ids)
        return ids.course

    def _course(self, number: int, size: DemoSize) -> CourseIds:
        t = self.time
        course = self.writer.add(
            "course",
            self.data.row(
                "course",
                id=None,
                category=self.site.category_id,
                sortorder=10000 + number,
                fullname=f"Demo course {number}: {size.name}",
                shortname=f"demo_{size.name.lower()}_{number}",
                summary=paragraphs(self.rng, 3, html=False),
                startdate=t - t % 86400 + 86400,
                timecreated=t,
                timemodified=t,
                cacherev=t + 360,
            ),
        )
        category_path = f"/{self.site.system_context}/{self.site.category_context}"
        context = add_context(self.writer, 50, course, category_path, 3)
        for row in self.data.template_rows("course_format_options"):
            self.writer.add("course_format_options", {**row, "id": None, "courseid": course})
        sections = [self.writer.next_id("course_sections") for _ in range(size.sections + 1)]
        grade_category = self.writer.add(
            "grade_categories",
            self.data.row(
                "grade_categories", id=None, courseid=course, path="", timecreated=t, timemodified=t
            ),
        )
        self.writer.flush()
        self.writer.update("grade_categories", grade_category, path=f"/{grade_category}/")
        self._grade_item("grade_items:course", course, iteminstance=grade_category, categoryid=None)
        path = f"{category_path}/{context}"
        return CourseIds(course, context, path, grade_category, sections)

    def _grade_item(self, key: str, course: int, **values: Any) -> int:
        row = self.data.row(
            key,
            id=None,
            courseid=course,
            sortorder=self.grade_sortorder,
            timecreated=self.time,
            timemodified=self.time + 1,
            **values,
        )
        self.grade_sortorder += 1
        return self.writer.add("grade_items", row)

    def _enrol(self, ids: CourseIds, users: list[int]) -> None:
        """The default instances (manual, guest, self); every user a student by manual."""
        instances = [
            self.writer.add(
                "enrol",
                {
                    **row,
                    "id": None,
                    "courseid": ids.course,
                    "timecreated": self.time,
                    "timemodified": self.time,
                },
            )
            for row in self.data.template_rows("enrol")
        ]
        when = self.time + 240
        for user in users:
            self.writer.add(
                "user_enrolments",
                self.data.row(
                    "user_enrolments",
                    id=None,
                    enrolid=instances[0],
                    userid=user,
                    timecreated=when,
                    timemodified=when,
                ),
            )
            self.writer.add(
                "role_assignments",
                self.data.row(
                    "role_assignments",
                    id=None,
                    roleid=STUDENT_ROLE,
                    contextid=ids.context,
                    userid=user,
                    timemodified=when,
                ),
            )

    def _module(self, ids: CourseIds, modname: str, instance: int, section: int) -> int:
        """A course module, its context, and its place in its section's sequence."""
        cm = self.writer.add(
            "course_modules",
            self.data.row(
                "course_modules",
                id=None,
                course=ids.course,
                module=self.site.modules[modname],
                instance=instance,
                section=ids.sections[section],
                added=self.time,
            ),
        )
        ctx = add_context(self.writer, 70, cm, ids.context_path, 4)
        ids.sequences.setdefault(section, []).append(cm)
        ids.module_contexts[(modname, instance)] = ctx
        self.module_count += 1
        return ctx

    def _assign(self, ids: CourseIds, i: int) -> tuple[int, int]:
        t = self.time
        assign = self.writer.add(
            "assign",
            self.data.row(
                "assign",
                id=None,
                course=ids.course,
                name=f"Assignment {i}",
                intro=f"Test assign {i}",
                nosubmissions=0,
                timemodified=t,
            ),
        )
        for row in self.data.template_rows("assign_plugin_config"):
            self.writer.add("assign_plugin_config", {**row, "id": None, "assignment": assign})
        self._module(ids, "assign", assign, 1)
        item = self._grade_item(
            "grade_items:assign",
            ids.course,
            categoryid=ids.grade_category,
            itemname=f"Assignment {i}",
            iteminstance=assign,
        )
        return assign, item

    def _page(self, ids: CourseIds, i: int) -> None:
        page = self.writer.add(
            "page",
            self.data.row(
                "page",
                id=None,
                course=ids.course,
                name=f"Page {i}",
                intro=f"Test page {i}",
                content=paragraphs(self.rng, 2),
                timemodified=self.time,
            ),
        )
        self._module(ids, "page", page, 1)

    def _resource(
        self, ids: CourseIds, n: int, name: str, files: int, file_size: int, section: int
    ) -> int:
        """A file resource: its text file and ``files`` generated ones, as tool_generator names them."""
        resource = self.writer.add(
            "resource",
            self.data.row(
                "resource",
                id=None,
                course=ids.course,
                name=name,
                intro=f"Test resource {n + 1}",
                timemodified=self.time,
            ),
        )
        ctx = self._module(ids, "resource", resource, section)
        area = FileArea(ctx, "mod_resource", "content")
        self.add_file(area, ".", b"")
        text = f"Test resource {n + 1} file".ljust(32, ".").encode()
        self.add_file(area, f"resource{n + 1}.txt", text, sortorder=1)
        stem = "smallfile" if files > 1 else f"bigfile{n - 1}"
        for k in range(files):
            name_k = f"{stem}{k}.dat" if files > 1 else f"{stem}.dat"
            self.add_file(area, name_k, file_bytes(self.rng, file_size))
        return resource

    def add_file(self, area: FileArea, name: str, content: bytes, sortorder: int = 0) -> int:
        """A file of this course, written at the course's time."""
        return add_file(
            self.writer, self.data, self.store, area, name, content, self.time, sortorder
        )

    def _forum(self, ids: CourseIds) -> int:
        forum = self.writer.add(
            "forum", self.data.row("forum", id=None, course=ids.course, timemodified=self.time)
        )
        self._module(ids, "forum", forum, 0)
        return forum

    def _extras(self, ids: CourseIds, size: DemoSize) -> tuple[int, int]:
        """What tool_generator does not make and the first backup issue ships: labels to a choice."""
        t, rng, add = self.time, self.rng, self.writer.add
        for _ in range(1, size.labels + 1):
            title = sentence(rng, 3)[:-1]
            row = self.data.row(
                "label",
                id=None,
                course=ids.course,
                name=title,
                timemodified=t,
                intro=f"<h4>{title}</h4><p>{sentence(rng)}</p>",
            )
            self._module(ids, "label", add("label", row), 2)
        for i in range(1, size.urls + 1):
            row = self.data.row(
                "url",
                id=None,
                course=ids.course,
                name=f"Reference {i}",
                timemodified=t,
                intro=f"<p>{sentence(rng, 6)}</p>",
                externalurl=f"https://example.org/demo/{ids.course}/{i}",
            )
            self._module(ids, "url", add("url", row), 2)
        folder = add(
            "folder",
            self.data.row("folder", id=None, course=ids.course, name="Readings", timemodified=t),
        )
        ctx = self._module(ids, "folder", folder, 2)
        area = FileArea(ctx, "mod_folder", "content")
        self.add_file(area, ".", b"")
        for i in range(1, size.folder_files + 1):
            self.add_file(area, f"reading{i}.txt", paragraphs(rng, 3, html=False).encode())
        glossary = add(
            "glossary",
            self.data.row(
                "glossary", id=None, course=ids.course, assessed=0, timecreated=t, timemodified=t
            ),
        )
        self._module(ids, "glossary", glossary, 2)
        choice = add("choice", self.data.row("choice", id=None, course=ids.course, timemodified=t))
        self._module(ids, "choice", choice, 2)
        return glossary, choice

    def _sections(self, ids: CourseIds) -> None:
        """Sections last: each one's sequence lists its modules' ids in order."""
        for number, section_id in enumerate(ids.sections):
            sequence = ",".join(str(cm) for cm in ids.sequences.get(number, []))
            self.writer.add(
                "course_sections",
                self.data.row(
                    "course_sections",
                    id=section_id,
                    course=ids.course,
                    section=number,
                    sequence=sequence,
                    timemodified=self.time,
                ),
            )
