import subprocess
import sys
import textwrap

import langdetect
import nltk
import punkt

from ifpo.constraints import Constraint
from ifpo.constraints.offline_nltk import offline_sentence_tokenizer

TEXTS = [
    "Dr. Smith went home. He was tired.",
    "The U.S. economy grew 3.5 percent. Analysts, e.g. at banks, were surprised! Were they? Yes.",
    "Mr. and Mrs. Jones arrived at 5 p.m. on Jan. 3. They left early.",
    "“Hello there.” Bye. It costs $4.50... or so they say.",
    "no capital letters here. still none. the end",
    "Item 1. Buy milk.\nItem 2. Walk the dog.\n\nSection 3 starts here. Done.",
]


def test_offline_tokenizer_matches_the_bundled_punkt_implementation():
    ours = offline_sentence_tokenizer()
    reference = punkt.PunktSentenceTokenizer(punkt.load_model("english"))
    for text in TEXTS:
        assert ours.tokenize(text) == reference.tokenize(text)
    assert ours.tokenize(TEXTS[0]) == ["Dr. Smith went home.", "He was tired."]


def test_nltk_sentence_and_word_tokenizers_work_offline():
    assert nltk.sent_tokenize(TEXTS[0]) == ["Dr. Smith went home.", "He was tired."]
    assert nltk.word_tokenize("It's LOUD. Ok.") == ["It", "'s", "LOUD", ".", "Ok", "."]
    sentences = Constraint(
        "length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3}
    )
    assert sentences.check(TEXTS[0]) is True and sentences.check(TEXTS[1]) is False


def test_langdetect_is_seeded():
    assert langdetect.DetectorFactory.seed == 0


def test_import_and_checks_make_no_network_calls():
    script = textwrap.dedent(
        """
        import socket
        attempts = []
        def refuse(self, *args, **kwargs):
            attempts.append(args)
            raise OSError("network disabled in test")
        socket.socket.connect = refuse
        socket.create_connection = lambda *a, **k: refuse(None, *a)
        import ifpo.constraints as c
        from ifpo.constraints.offline_nltk import REFUSED_DOWNLOADS
        checks = [
            c.Constraint("length_constraints:number_sentences", {"relation": "at least", "num_sentences": 2}),
            c.Constraint("change_case:capital_word_frequency", {"capital_frequency": 1,
                                                                "capital_relation": "at least"}),
            c.Constraint("language:response_language", {"language": "en"}),
        ]
        results = [x.check("THIS is one. This is two.") for x in checks]
        assert results == [True, True, True], results
        assert not attempts, attempts
        print("refused:", sorted(REFUSED_DOWNLOADS))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout
