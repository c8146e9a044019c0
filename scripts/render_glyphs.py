"""Render a Ming -> Kai Chinese-glyph translation dataset from the AR PL UMing / UKai fonts.

Domain A is a set of common CJK characters drawn in the Ming/Song style font (AR PL UMing), domain B
the same characters in the Kai (brush calligraphy) style font (AR PL UKai). Only characters that BOTH
fonts really contain (cmap entry, non-empty ink, not the .notdef box) are used, taken in rough
modern-Chinese frequency order (an embedded list of the ~1000 most frequent simplified characters),
then in CJK Unified Ideographs block order (U+4E00..U+9FFF). Each glyph is drawn black on white with
one font size per font (``--scale`` x ``--size``), centred on its ink bounding box, and saved as a
grayscale PNG named ``u{codepoint:04x}.png``. Train and test characters are disjoint (``--seed``
shuffles which is which).

Layouts (``--layout``):
  unpaired  OUT/trainA, OUT/trainB, OUT/testA, OUT/testB (CycleGAN layout). trainA and trainB use two
            disjoint halves of the train characters, so no pairing leaks; testA/testB hold the same
            characters, so G(A) can be scored against the real Kai glyph.
  paired    OUT/train/A, OUT/train/B, OUT/test/A, OUT/test/B with identical file names per character.
  both      both of the above under the same OUT.

Needs Pillow (fontTools is used for the cmap check when installed) and the Debian fonts:
    apt-get install -y fonts-arphic-uming fonts-arphic-ukai

Example (this made the committed samples/ming2kai):
    python scripts/render_glyphs.py --out samples/ming2kai --size 64 --train 48 --test 8 \
        --layout unpaired --seed 0
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DEFAULT_MING = Path("/usr/share/fonts/truetype/arphic/uming.ttc")
DEFAULT_KAI = Path("/usr/share/fonts/truetype/arphic/ukai.ttc")
FONT_HINT = "install fonts-arphic-uming fonts-arphic-ukai"
CJK_FIRST, CJK_LAST = 0x4E00, 0x9FFF

# The ~1000 most frequent simplified Chinese characters, most frequent first (after Jun Da's
# Modern Chinese Character Frequency List; the order is approximate, only used to prefer common
# characters).
FREQUENT_CHARS = (
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里"
    "用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实"
    "日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应战向头文体政"
    "美相见被利什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿原东声提立及比员"
    "解水名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太量再感建务做接必场件"
    "计管期市直德资命山金指克许统区保至队形社便空决治展马科司五基眼书非则听白却界达光放强即像难且权思王象"
    "完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改"
    "收根干造言联持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存未远叫台单影具罗字爱击流备兵连调"
    "深商算质团集百需价花党华城石级整府离况亚请技际约示复病息究线似官火断精满支视消越器容照须九增研写称企"
    "八功吗包片史委乎查轻易早曾除农找装广显吧阿李标谈吃图念六引历首医局突专费号尽另周较注语仅考落青随选列"
    "武红响虽推势参希古众构房半节土投某案黑维革划敌致陈律足态护七兴派孩验责营星够章音跟志底站严巴例防族供"
    "效续施留讲型料终答紧黄绝奇察母京段依批群项故按河米围江织害斗双境客纪采举杀攻父苏密低朝友诉止细愿千值"
    "仍男钱破网热助倒育属坐帝限船脸职速刻乐否刚威毛状率甚独球般普怕弹校苦创假久错承印晚兰试股拿脑预谁益阳"
    "若哪微尼继送急血惊伤素药适波夜省初喜卫源食险待述陆习置居劳财环排福纳欢雷警获模充负云停木游龙树疑层冷"
    "洲冲射略范竟句室异激汉村哈策演简卡罪判担州静退既衣您宗积余痛检差富灵协角占配征修皮挥胜降阶审沉坚善妈"
    "刘读啊超免压银买皇养伊怀执副乱抗犯追帮宣佛岁航优怪香著田铁控税左右份穿艺背阵草脚概恶块顿敢守酒岛托央"
    "户烈洋哥索胡款靠评版宝座释景顾弟登货互付伯慢欧换闻危忙核暗姐介坏讨丽良序升监临亮露永呼味野架域沙掉括"
    "舰鱼杂误湾吉减编楚肯测败屋跑梦散温困剑渐封救贵枪缺楼县尚毫移娘朋画班智亦耳恩短掌恐遗固席松秘谢鲁遇康"
    "虑幸均销钟诗藏赶剧票损忽巨炮旧端探湖录叶春乡附吸予礼港雨呀板庭妇归睛饭额含顺输摇招婚脱补谓督毒油疗旅"
    "泽材灭逐莫笔亡鲜词圣择寻厂睡博勒烟授诺伦岸奥唐卖俄炸载洛健堂旁宫喝借君禁阴园谋宋避抓荣姑孙逃牙束跳顶"
)


@dataclass
class GlyphFont:
    """One font face at a fixed pixel size, with a glyph-coverage test."""

    name: str
    path: Path
    font: ImageFont.FreeTypeFont
    cmap: set[int] | None
    notdef: bytes

    @classmethod
    def load(cls, name: str, path: Path, index: int, pixel_size: int) -> GlyphFont:
        if not path.is_file():
            sys.exit(f"render_glyphs: error: {name} font not found: {path} ({FONT_HINT}, or pass --{name}-font)")
        try:
            font = ImageFont.truetype(str(path), size=pixel_size, index=index)
        except OSError as exc:
            sys.exit(f"render_glyphs: error: cannot load {name} font {path} (face {index}): {exc}")
        cmap = _read_cmap(path, index)
        notdef = _raster(font, chr(0x10FFFD), pixel_size).tobytes()  # a noncharacter: always .notdef
        return cls(name, path, font, cmap, notdef)

    @property
    def label(self) -> str:
        family, style = self.font.getname()
        return f"{family} {style} ({self.path})"

    def has_glyph(self, ch: str) -> bool:
        if self.cmap is not None and ord(ch) not in self.cmap:
            return False
        ink = _raster(self.font, ch, int(self.font.size))
        return ink.getbbox() is not None and ink.tobytes() != self.notdef

    def render(self, ch: str, size: int) -> Image.Image:
        """Black glyph on white, centred on its ink bounding box, on a ``size`` x ``size`` canvas."""
        ink = _raster(self.font, ch, size)
        bbox = ink.getbbox()
        if bbox is None:
            raise ValueError(f"{self.name} font renders no ink for U+{ord(ch):04X}")
        glyph = ink.crop(bbox)
        w, h = glyph.size
        if w > size or h > size:
            raise ValueError(
                f"{self.name} glyph U+{ord(ch):04X} is {w}x{h} px, larger than the {size} px canvas; lower --scale"
            )
        canvas = Image.new("L", (size, size), 0)
        canvas.paste(glyph, ((size - w) // 2, (size - h) // 2))
        return canvas.point(lambda v: 255 - v)


def _raster(font: ImageFont.FreeTypeFont, ch: str, size: int) -> Image.Image:
    """White-on-black ink of ``ch`` drawn at (size, size) on a 3*size canvas, so nothing is clipped."""
    ink = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(ink).text((size, size), ch, fill=255, font=font)
    return ink


def _read_cmap(path: Path, index: int) -> set[int] | None:
    """Code points mapped by the font's best cmap, or ``None`` when fontTools is not installed."""
    try:
        from fontTools.ttLib import TTFont
    except ImportError:
        return None
    with TTFont(str(path), fontNumber=index, lazy=True) as tt:
        return set(tt.getBestCmap())


def candidates(order: str) -> Iterator[str]:
    """Characters to try, in preference order, without repeats."""
    seen: set[str] = set()
    if order == "frequency":
        for ch in "".join(FREQUENT_CHARS):
            if ch not in seen:
                seen.add(ch)
                yield ch
    for cp in range(CJK_FIRST, CJK_LAST + 1):
        ch = chr(cp)
        if ch not in seen:
            yield ch


def pick_characters(fonts: Sequence[GlyphFont], count: int, order: str) -> list[str]:
    picked: list[str] = []
    for ch in candidates(order):
        if len(picked) == count:
            break
        if all(f.has_glyph(ch) for f in fonts):
            picked.append(ch)
    if len(picked) < count:
        sys.exit(f"render_glyphs: error: only {len(picked)} characters are in both fonts, {count} requested")
    return picked


def file_name(ch: str) -> str:
    return f"u{ord(ch):04x}.png"


def plan(layout: str, train: list[str], test: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Output sub-folder -> (domain 'A' or 'B', characters)."""
    jobs: dict[str, tuple[str, list[str]]] = {}
    if layout in ("unpaired", "both"):
        half = len(train) // 2
        jobs.update(
            {
                "trainA": ("A", train[:half]),
                "trainB": ("B", train[half:]),
                "testA": ("A", test),
                "testB": ("B", test),
            }
        )
    if layout in ("paired", "both"):
        jobs.update({"train/A": ("A", train), "train/B": ("B", train), "test/A": ("A", test), "test/B": ("B", test)})
    return jobs


def prepare_dirs(out: Path, subdirs: Sequence[str], overwrite: bool) -> None:
    for sub in subdirs:
        d = out / sub
        old = sorted(d.glob("*.png")) if d.is_dir() else []
        if old and not overwrite:
            sys.exit(f"render_glyphs: error: {d} already holds {len(old)} PNGs; pass --overwrite to replace them")
        for p in old:
            p.unlink()
        d.mkdir(parents=True, exist_ok=True)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output dataset folder")
    p.add_argument("--size", type=positive, default=64, help="image side in px (default 64)")
    p.add_argument("--train", type=positive, default=400, help="number of train characters (default 400)")
    p.add_argument("--test", type=positive, default=100, help="number of test characters (default 100)")
    p.add_argument("--layout", choices=("unpaired", "paired", "both"), default="unpaired")
    p.add_argument("--seed", type=int, default=0, help="shuffles the train/test assignment (default 0)")
    p.add_argument("--scale", type=float, default=0.8, help="font size as a fraction of --size (default 0.8)")
    p.add_argument(
        "--order",
        choices=("frequency", "block"),
        default="frequency",
        help="prefer frequent characters, or take the CJK block in code-point order (default frequency)",
    )
    p.add_argument("--ming-font", type=Path, default=DEFAULT_MING, help=f"domain A font (default {DEFAULT_MING})")
    p.add_argument("--kai-font", type=Path, default=DEFAULT_KAI, help=f"domain B font (default {DEFAULT_KAI})")
    p.add_argument("--ming-index", type=int, default=0, help="face index in the Ming .ttc (default 0)")
    p.add_argument("--kai-index", type=int, default=0, help="face index in the Kai .ttc (default 0)")
    p.add_argument("--overwrite", action="store_true", help="delete PNGs already in the output folders")
    args = p.parse_args(argv)
    if args.layout in ("unpaired", "both") and args.train < 2:
        p.error("--train must be >= 2 for the unpaired layout (it is split between trainA and trainB)")
    if not 0.1 <= args.scale <= 1.0:
        p.error("--scale must be in [0.1, 1.0]")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    pixel_size = max(1, round(args.scale * args.size))
    fonts = {
        "A": GlyphFont.load("ming", args.ming_font, args.ming_index, pixel_size),
        "B": GlyphFont.load("kai", args.kai_font, args.kai_index, pixel_size),
    }
    chars = pick_characters(list(fonts.values()), args.train + args.test, args.order)
    random.Random(args.seed).shuffle(chars)
    test, train = chars[: args.test], chars[args.test :]

    jobs = plan(args.layout, train, test)
    prepare_dirs(args.out, list(jobs), args.overwrite)
    try:
        for sub, (domain, subset) in jobs.items():
            for ch in subset:
                img = fonts[domain].render(ch, args.size)
                img.save(args.out / sub / file_name(ch), optimize=True)
    except ValueError as exc:
        sys.exit(f"render_glyphs: error: {exc}")

    counts = ", ".join(f"{sub}={len(subset)}" for sub, (_, subset) in jobs.items())
    print(
        f"render_glyphs: {args.layout} {args.size}px {counts} | A={fonts['A'].label} B={fonts['B'].label} -> {args.out}"
    )


if __name__ == "__main__":
    main()
