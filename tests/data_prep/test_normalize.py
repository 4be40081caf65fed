"""The LibriSpeech-style normaliser, on real prompt lines of Debian's asterisk-core-sounds-en transcripts."""

from __future__ import annotations

import re

import pytest

from data_prep.normalize import normalize_text, spoken_text, words_and_punctuation

KEYPAD = {"*": "star", "#": "pound"}
LIBRISPEECH = re.compile(r"[A-Z']+( [A-Z']+)*")

# (prompt name, line of core-sounds-en.txt, expected transcript)
PROMPT_LINES = [
    ("conf-usermenu", "Please press 1 to mute or unmute yourself, 4 or 6 to decrease or increase the conference "
     "volume, 7 or 9 to decrease or increase your volume, or 8 to exit.",
     "PLEASE PRESS ONE TO MUTE OR UNMUTE YOURSELF FOUR OR SIX TO DECREASE OR INCREASE THE CONFERENCE VOLUME SEVEN "
     "OR NINE TO DECREASE OR INCREASE YOUR VOLUME OR EIGHT TO EXIT"),
    ("demo-moreinfo", "Asterisk is an Open Source full-featured PBX and IVR platform that runs on the linux "
     "operating system.  For more information, visit www.asterisk.org.",
     "ASTERISK IS AN OPEN SOURCE FULL FEATURED PBX AND IVR PLATFORM THAT RUNS ON THE LINUX OPERATING SYSTEM FOR "
     "MORE INFORMATION VISIT W W W DOT ASTERISK DOT ORG"),
    ("demo-instruct", "have at least a 28.8 kilobit modem.  To execute an echo test dial 600.",
     "HAVE AT LEAST A TWENTY EIGHT POINT EIGHT KILOBIT MODEM TO EXECUTE AN ECHO TEST DIAL SIX HUNDRED"),
    ("demo-instruct", "The sample configuration also has a single user with extension 1234 and password 4242.",
     "THE SAMPLE CONFIGURATION ALSO HAS A SINGLE USER WITH EXTENSION ONE TWO THREE FOUR AND PASSWORD FOUR TWO "
     "FOUR TWO"),
    ("digits/a-m", "A.M.", "A M"),
    ("call-fwd-no-ans", "Call-Forward on No Answer.", "CALL FORWARD ON NO ANSWER"),
    ("at-tone-time-exactly", "At the sound of the tone, the time will be exactly...",
     "AT THE SOUND OF THE TONE THE TIME WILL BE EXACTLY"),
    ("priv-callee-options", 'Dial 4 to send this caller to a polite "don\'t call" menu, now and forevermore.',
     "DIAL FOUR TO SEND THIS CALLER TO A POLITE DON'T CALL MENU NOW AND FOREVERMORE"),
    ("followme/status", "the person you are calling is not at their desk; I will try to locate them for you",
     "THE PERSON YOU ARE CALLING IS NOT AT THEIR DESK I WILL TRY TO LOCATE THEM FOR YOU"),
    ("basic-pbx-ivr-main", "Thank you for calling Super Awesome Company, Waldo's premier provider of perfect "
     "products.", "THANK YOU FOR CALLING SUPER AWESOME COMPANY WALDO'S PREMIER PROVIDER OF PERFECT PRODUCTS"),
    ("confbridge-binaural-on", "3D audio enabled", "THREE D AUDIO ENABLED"),
    ("goodbye", "Goodbye!", "GOODBYE"),
]


@pytest.mark.parametrize("name, line, expected", PROMPT_LINES, ids=[f"{p[0]}-{i}" for i, p in enumerate(PROMPT_LINES)])
def test_prompt_lines_are_normalised_librispeech_style(name, line, expected):
    text = normalize_text(line)
    assert text == expected
    assert LIBRISPEECH.fullmatch(text)
    assert normalize_text(text) == text                    # stable: normalised text is left alone


def test_keypad_symbols_and_acronyms_as_the_prompts_say_them():
    line = "press * to toggle pause, press # to enter a new dictation filename"
    assert normalize_text(line) == "PRESS TO TOGGLE PAUSE PRESS TO ENTER A NEW DICTATION FILENAME"  # unknown: dropped
    assert normalize_text(line, symbols=KEYPAD) == ("PRESS STAR TO TOGGLE PAUSE PRESS POUND TO ENTER A NEW "
                                                    "DICTATION FILENAME")
    moreinfo = "Asterisk is an Open Source full-featured PBX and IVR platform"
    assert normalize_text(moreinfo, spell_acronyms=True) == ("ASTERISK IS AN OPEN SOURCE FULL FEATURED P B X AND "
                                                             "I V R PLATFORM")
    assert normalize_text("connect with IAX or SIP", spell_acronyms=True, spoken_acronyms=["IAX"]) == \
        "CONNECT WITH IAX OR S I P"
    upper = normalize_text(moreinfo, spell_acronyms=True)
    assert normalize_text(upper, spell_acronyms=True) == upper       # all upper case: nothing is an acronym


@pytest.mark.parametrize("raw, expected", [
    ("Mr. and Mrs. Smith met Dr. Jones on Main St. near St. Paul's.",
     "MISTER AND MISSUS SMITH MET DOCTOR JONES ON MAIN STREET NEAR SAINT PAUL'S"),
    ("It costs $3.50, or £1, or $2 million.",
     "IT COSTS THREE DOLLARS AND FIFTY CENTS OR ONE POUND OR TWO MILLION DOLLARS"),
    ("We met at 10:30 a.m., left at 10:05 and came back at 7pm or 9 o'clock.",
     "WE MET AT TEN THIRTY A M LEFT AT TEN OH FIVE AND CAME BACK AT SEVEN P M OR NINE O'CLOCK"),
    ("On the 21st of May 1999, 5% of the 1,200 voters were born in the 1950s.",
     "ON THE TWENTY FIRST OF MAY NINETEEN NINETY NINE FIVE PERCENT OF THE ONE THOUSAND TWO HUNDRED VOTERS WERE "
     "BORN IN THE NINETEEN FIFTIES"),
    ("Room No. 7, call extension 0042 and bring apples, pears, etc.",
     "ROOM NUMBER SEVEN CALL EXTENSION ZERO ZERO FOUR TWO AND BRING APPLES PEARS ET CETERA"),
    ("He said 'hello'\u2014then left \u2026 e.g. for the U.S. & back.",
     "HE SAID HELLO THEN LEFT FOR EXAMPLE FOR THE U S AND BACK"),
    ("twenty-one self-made men in 2005, and 123 others", "TWENTY ONE SELF MADE MEN IN TWO THOUSAND AND FIVE AND "
     "ONE HUNDRED AND TWENTY THREE OTHERS"),
])
def test_numbers_abbreviations_and_punctuation(raw, expected):
    assert normalize_text(raw) == expected
    assert normalize_text(expected) == expected


def test_spoken_text_is_the_transcript_with_phrase_punctuation():
    line = "Please press 1 to mute or unmute yourself, 2 to lock or unlock the conference; or 8 to exit"
    spoken = spoken_text(line)
    assert spoken == ("please press one to mute or unmute yourself, two to lock or unlock the conference, or eight "
                      "to exit.")
    assert spoken.replace(",", "").replace(".", "").upper() == normalize_text(line)
    assert spoken_text("Is it on?  Yes... it is!") == "is it on? yes, it is!"
    assert spoken_text("...") == "" and normalize_text("() -- ; ...") == ""
    assert words_and_punctuation("Hello, world.") == [("hello", ","), ("world", ".")]
