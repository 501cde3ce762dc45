"""The anonymiser on small members: what it replaces, and what it must not
touch (tags, attributes, single words that happen to be a name)."""

from __future__ import annotations

from coursevault.moodle2.anonymize import Anonymizer


def users_xml(*users: tuple[str, str, str, str]) -> bytes:
    blocks = []
    for uid, (username, first, last, email) in enumerate(users, 7):
        blocks.append(
            f'  <user id="{uid}" contextid="{uid + 100}">\n'
            f"    <username>{username}</username>\n    <idnumber>S{uid}</idnumber>\n"
            f"    <email>{email}</email>\n    <lastip>10.1.2.3</lastip>\n"
            f"    <description>$@NULL@$</description>\n"
            f"    <middlename></middlename>\n"
            f"    <firstname>{first}</firstname>\n    <lastname>{last}</lastname>\n"
            f"    <password>$2y$10$secret</password>\n"
            "    <custom_fields>\n      <custom_field id=\"1\">\n"
            "        <field_name>phone</field_name>\n        <field_data>555 123</field_data>\n"
            "      </custom_field>\n    </custom_fields>\n"
            "    <roles>\n      <role_overrides>\n      </role_overrides>\n"
            "      <role_assignments>\n      </role_assignments>\n    </roles>\n"
            "  </user>\n")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<users>\n' + "".join(blocks)
            + "</users>").encode()


USERS = users_xml(("jbloggs", "Joe", "Bloggs", "joe@uni.example"),
                  ("name", "Anna", "Name", "anna.o@uni.example"),
                  ("obrien", "Seán", "O'Brien", "sean@uni.example"))


def test_users_xml_as_moodles_anonymiser_writes_it() -> None:
    out = Anonymizer(USERS).member("users.xml", USERS).decode()
    assert "<username>anon1</username>" in out and "<username>anon3</username>" in out
    assert "<email>anon2@doesntexist.invalid</email>" in out
    assert "<firstname>anonfirstname1</firstname>" in out
    assert "<lastip>127.0.0.1</lastip>" in out and "<city>" not in out  # only fields present
    assert "<idnumber></idnumber>" in out and "<description></description>" in out
    assert "<password></password>" in out and "secret" not in out
    assert "555 123" not in out and "<custom_fields>\n    </custom_fields>" in out
    for real in ("jbloggs", "Bloggs", "joe@uni.example", "Seán", "O'Brien"):
        assert real not in out
    assert out.count("<user id=") == 3 and 'contextid="107"' in out  # ids kept


def test_names_and_emails_in_any_text_become_the_same_pseudonym() -> None:
    anon = Anonymizer(USERS)
    post = ("<post id=\"3\"><userid>7</userid><message>&lt;p&gt;Thanks Joe Bloggs "
            "(joe@uni.example) and Seán O&#039;Brien!&lt;/p&gt;</message>"
            "<author>Bloggs, Joe</author><username>jbloggs</username></post>")
    out = anon.member("activities/forum_1/forum.xml", post.encode()).decode()
    assert "Thanks anonfirstname1 anonlastname1 (anon1@doesntexist.invalid)" in out
    assert "anonfirstname3 anonlastname3!" in out
    assert "<author>anonlastname1, anonfirstname1</author>" in out
    assert "<username>anon1</username>" in out and "<userid>7</userid>" in out


def test_tags_attributes_and_lone_words_are_left_alone() -> None:
    # "Name" is a user's surname and an element name; "Anna" alone is a word
    member = (b'<name id="Name">Name and Anna wrote a jbloggs-style note</name>'
              b"<shortname>jbloggs</shortname>")
    assert Anonymizer(USERS).member("course/course.xml", member) == member


def test_ips_are_localhost_and_null_stays_null() -> None:
    logs = b"<log><ip>192.168.7.7</ip></log><log><ip>$@NULL@$</ip></log>"
    out = Anonymizer(USERS).member("course/logs.xml", logs)
    assert out == b"<log><ip>127.0.0.1</ip></log><log><ip>$@NULL@$</ip></log>"


def test_profile_pictures_are_left_out_with_their_own_contents() -> None:
    def entry(fid: int, component: str, area: str, sha: str) -> str:
        return (f'\n  <file id="{fid}">\n    <contenthash>{sha}</contenthash>\n'
                f"    <component>{component}</component>\n    <filearea>{area}</filearea>\n"
                "  </file>")
    files = ("<files>" + entry(1, "user", "icon", "aa11") + entry(2, "user", "profile", "bb22")
             + entry(3, "mod_forum", "attachment", "bb22") + entry(4, "user", "private", "cc33")
             + "\n</files>").encode()
    anon = Anonymizer(USERS)
    assert anon.dropped_contents(files) == {"aa11"}  # bb22 is an attachment's too
    out = anon.member("files.xml", files).decode()
    assert 'id="1"' not in out and 'id="2"' not in out
    assert 'id="3"' in out and 'id="4"' in out and out.endswith("\n</files>")


def test_the_backup_says_it_is_anonymised() -> None:
    info = (b"<information>\n    <name>backup-moodle2-course-2-x-20261204-0415.mbz</name>\n"
            b"<setting>\n        <level>root</level>\n        <name>anonymize</name>\n"
            b"        <value>0</value>\n      </setting>\n<setting>\n        <level>root</level>\n"
            b"        <name>filename</name>\n        "
            b"<value>backup-moodle2-course-2-x-20261204-0415.mbz</value>\n      </setting>")
    out = Anonymizer(USERS).member("moodle_backup.xml", info)
    assert b"<value>1</value>" in out
    assert out.count(b"backup-moodle2-course-2-x-20261204-0415-an.mbz<") == 2


def test_a_backup_without_users_changes_nothing_but_ips() -> None:
    anon = Anonymizer(None)
    assert anon.member("course/course.xml", b"<a>Joe Bloggs</a>") == b"<a>Joe Bloggs</a>"
    assert anon.member("files/aa/aa11", b"\x00\x01") == b"\x00\x01"
