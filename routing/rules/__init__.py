"""The rules file: `import_rules` / `export_rules` (README: Rules file).

document: its schema and checks; contents: a rule's contract as the file writes it; changes: what an
import changes per rule, and making those changes through the governance services; transfer: the two
entry points."""

from routing.rules.changes import ActorRequired, RuleChange
from routing.rules.document import RULES_FILE_SCHEMA, RulesFileError
from routing.rules.transfer import RulesImport, rules_export, rules_import

__all__ = [
    "RULES_FILE_SCHEMA",
    "ActorRequired",
    "RuleChange",
    "RulesFileError",
    "RulesImport",
    "rules_export",
    "rules_import",
]
