"""Run by a service venv's own Python, never imported by stackcrate (options.py runs it): checks config overrides
against the oslo.config options that venv defines, with oslo.config's own types.

Only the standard library, oslo.config and keystoneauth1 (both in every OpenStack service venv) are used.

stdin:  {"sections": {section: {option: value as the ini file holds it, or null: do not check it}},
         "aliases": {section: the group whose options it takes}}
stdout: {"problems": [{"section", "option" (null for a section),
                       "kind": "section"|"option"|"value"|"deprecated" (the service still takes it, and warns),
                       "reason", "type", "secret", "known": [the names it could have meant, or the one to use]}],
         "unloadable": {entry point: why its options could not be listed}}
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points

GROUP = "oslo.config.opts"  # the entry points oslo-config-generator reads: every option a service registers


def normal(section):
    # oslo.config finds a section in any case, except DEFAULT (ConfigOpts._get_file_value, normalized=True).
    return section if section == "DEFAULT" else section.lower()


class Alias:
    """A deprecated name of opt: oslo.config still reads it, and logs a warning naming [group] opt.dest."""

    def __init__(self, opt, group):
        self.opt, self.group = opt, group


def add(groups, group, opt):
    """Index opt under every (section, key) a config file may set it by: its dest, and its deprecated names as
    Alias (an option's own name wins over another's deprecated one)."""
    groups.setdefault(group, {})[opt.dest] = opt
    for old in opt.deprecated_opts:
        groups.setdefault(normal(old.group or group), {}).setdefault((old.name or opt.dest).replace("-", "_"),
                                                                     Alias(opt, group))


def known_options():
    """section -> key -> option, from every oslo.config.opts entry point of this venv."""
    groups, unloadable = {}, {}
    for ep in entry_points(group=GROUP):
        try:
            listed = list(ep.load()())
        # any error of one optional plugin (an import, a missing driver) must not hide the others' options
        except Exception as exc:  # noqa: BLE001
            unloadable[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        for group, opts in listed:
            name = normal(getattr(group, "name", group) or "DEFAULT")
            groups.setdefault(name, {})
            for opt in opts:
                add(groups, name, opt)
    return groups, unloadable


def auth_plugin_options(plugin):
    """A section with keystoneauth's auth_type takes the options of its auth plugin, which the services register
    only at run time (keystonemiddleware's [keystone_authtoken] lists none of them): that plugin's, or any
    plugin's when the override does not name one (stackcrate's generated sections say "password")."""
    from keystoneauth1 import loading

    names = [plugin] if plugin else sorted(loading.get_available_plugin_names())
    out = {}
    for name in names:
        opts = loading.get_auth_plugin_conf_options(name)
        for opt in opts:
            out.setdefault(opt.dest, opt)
        for opt in opts:  # after: no deprecated name hides an option's own
            for old in opt.deprecated_opts:
                out.setdefault((old.name or opt.dest).replace("-", "_"), Alias(opt, None))
    return out


def auth_plugins():
    from keystoneauth1 import loading

    return sorted(loading.get_available_plugin_names())


def value_problem(opt, text):
    """Why opt's type rejects text, or None."""
    if text is None or "$" in text:
        # oslo.config substitutes $other_option before the type sees the value: only the service knows it
        return None
    try:
        opt.type(text)
    except (ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
    return None


# keystoneauth's options have Python's types, which oslo.config calls as they are (bool("maybe") is True)
PYTHON_TYPES = {"str": "string value", "int": "integer value", "float": "floating point value",
                "bool": "boolean value"}


def type_name(kind):
    # oslo.config's types say what they hold ("boolean value")
    name = getattr(kind, "type_name", None) or getattr(kind, "__name__", None) or type(kind).__name__
    return PYTHON_TYPES.get(name, name)


def problem(section, option, kind, known, reason="", opt=None):
    return {"section": section, "option": option, "kind": kind, "known": sorted(known), "reason": reason,
            "type": type_name(opt.type) if opt is not None else None,
            "secret": bool(getattr(opt, "secret", False))}


def deprecation(section, option, found):
    """The deprecated-name or deprecated-for-removal problem of setting [section] option, found by that key, or
    None: the option is read, but the service logs a warning at every start and a later release drops it."""
    if isinstance(found, Alias):
        instead = f"[{found.group or section}] {found.opt.dest}"
        return problem(section, option, "deprecated", [instead], f"a deprecated name of {instead}", found.opt)
    if getattr(found, "deprecated_for_removal", False):
        reason = " ".join((getattr(found, "deprecated_reason", None) or "").split())
        return problem(section, option, "deprecated", (), f"deprecated for removal{': ' if reason else ''}{reason}",
                       found)
    return None


def check(sections, aliases, groups):
    out = []
    for section, options in sections.items():
        group = normal(aliases.get(section, section))
        if group not in groups:
            out.append(problem(section, None, "section", set(groups) | set(aliases)))
            continue
        known = dict(groups[group])
        if "auth_type" in known:
            plugin = options.get("auth_type")
            if plugin and plugin not in auth_plugins():
                out.append(problem(section, "auth_type", "value", auth_plugins(),
                                   f"keystoneauth has no auth plugin {plugin!r}", known["auth_type"]))
                plugin = None
            for key, opt in auth_plugin_options(plugin).items():
                known.setdefault(key, opt)
        for option, text in options.items():
            found = known.get(option)
            opt = found.opt if isinstance(found, Alias) else found
            if opt is None:
                out.append(problem(section, option, "option", known))
            elif (why := value_problem(opt, text)) is not None:
                out.append(problem(section, option, "value", (), why, opt))
            elif (old := deprecation(section, option, found)) is not None:
                out.append(old)
    return out


def main():
    request = json.load(sys.stdin)
    answer = sys.stdout
    sys.stdout = sys.stderr  # whatever an imported module prints must not corrupt the answer
    groups, unloadable = known_options()
    problems = check(request["sections"], request.get("aliases", {}), groups)
    json.dump({"problems": problems, "unloadable": unloadable}, answer)
    answer.write("\n")


if __name__ == "__main__":
    main()
