"""The console API's JSON parser: DRF's own parses with Python's json module, which recurses into a
RecursionError (a 500) on a body of a few thousand brackets. This one holds every body to the intake's
nesting limit (routing/jsonbounds.py) and answers 400 with what is wrong."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from routing.jsonbounds import JSONInputError, loads_bounded


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            return None
        try:
            return loads_bounded(stream.read())
        except JSONInputError as exc:
            raise ParseError(str(exc)) from None
