"""Build ``data/maintenance_terms.txt``: the maintenance lexicon of the transcript corrector.

    .venv/bin/python -m bot.nlp.build_terms          # rewrites bot/nlp/data/maintenance_terms.txt

The terms come from word lists shipped inside packages this project already installs, filtered
to the maintenance domain (``data/LEXICON_SOURCES.md`` lists each source and its licence):

* jieba 0.42.1's ``dict.txt`` (MIT): 349 k words with frequency and part of speech;
* pypinyin 0.55.0's ``phrases_dict.json`` (MIT; its data is the phrase-pinyin-data project,
  MIT): 47 k phrases with their readings, which adds technical compounds jieba lacks.

A word is kept when its shape says it is an equipment, part, medium, fault or measured
quantity: it ends in a head character of that kind (…泵, …阀, …轴承, …油, …温度) and
contains a technical character (电, 压, 油, 机 …) or its head is technical itself (…阀,
…导线), or it contains a fault word (漏油, 堵塞, 磨损 …). General words that only look
technical (手机, 飞机, 电视) are kept out by a short stop list; jieba's words must be tagged as
nouns (n, nz, vn), its fault words as verbs, nouns or adjectives; pypinyin's phrases (no
tags) only give equipment, parts and quantities of 3–6 characters. The project's own lists
(``lexicon_asr.txt``, ``domain_dict.txt``, the diagnosis reader's parts, quantities and
units) are added at run time, not here, and so is a deployment's catalog of assets and parts.

One term a line: ``TERM <TAB> KIND <TAB> SOURCE``; KIND is equipment, part, medium, fault,
quantity or unit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

__all__ = ["OUT", "build", "main"]

OUT = Path(__file__).with_name("data") / "maintenance_terms.txt"
_HAN = re.compile(r"[\u4e00-\u9fff]{2,6}")


def _split(words: str) -> tuple[str, ...]:
    return tuple(words.split())


#: Last characters (or words) that make a word a thing of each kind.
_HEADS: dict[str, tuple[str, ...]] = {
    "equipment": _split("机 器 炉 塔 床 柜 梯"),
    "part": _split(
        "泵 阀 管 轴 轮 带 线 芯 片 圈 环 垫 罐 缸 杆 座 架 盘 嘴 锁 链 栓 钉 簧 表 计 仪 "
        "膜 刀 扇 灯 壳 塞 销 罩 闸 缆 件 轴承 开关 电机 马达 螺母 螺丝 螺杆 齿轮 丝杠 导轨 "
        "滤芯 密封 探头 模块 电极 电阻 电容 保险 触点 端子 喷嘴 叶轮 叶片 线圈 导线 传感器"
    ),
    "medium": _split("油 液 剂 脂 气 胶 冷媒 氟利昂 制冷剂 乳化液 切削液"),
    "quantity": _split(
        "温度 压力 电流 电压 转速 流量 功率 频率 湿度 速度 间隙 真空度 负压 液位 油位 "
        "扭矩 振动 阻值 电阻 行程 压差 温差 张力 浓度 粘度 硬度 厚度 尺寸"
    ),
}
#: Heads that are technical themselves: any noun ending in one is kept (单向阀, 补偿导线).
_STRONG_HEADS = frozenset(
    _split(
        "泵 阀 缸 轴承 电机 马达 螺母 螺杆 齿轮 丝杠 导轨 滤芯 传感器 继电器 接触器 变频器 "
        "导线 电缆 密封件 密封圈 联轴器 减速机 压缩机 电磁阀 油封 皮带 链条 弹簧 垫片"
    )
)
#: A kept part, equipment or medium word has one of these characters.
_TECH = frozenset(
    "电压油气液热冷温阀泵轴齿螺焊钢铁铜铝磁感控变频传动机械风水滤密封缸塞轮承杆链簧栓铆"
    "锻铸模刀刃钻铣车磨床炉锅炉塔罐管线缆插座闸继触熔保险偶阻容晶硅泵扇叶压缩蒸发冷凝"
    "液压气动伺服步进编码光栅丝杠导轨滑块减速离合制动刹皮带同步"
)
#: Fault words: contain one of these and are tagged as verbs, nouns of action or adjectives.
_FAULTS = _split(
    "漏油 漏气 漏水 漏电 漏料 渗漏 泄漏 堵塞 堵死 卡死 卡住 卡滞 磨损 磨坏 松动 松脱 断裂 "
    "断开 断路 短路 烧坏 烧毁 烧焦 锈蚀 生锈 腐蚀 振动 震动 异响 噪音 跳闸 过热 过载 过流 "
    "过压 欠压 失压 击穿 失灵 老化 变形 破损 开裂 裂纹 结垢 结霜 打滑 抱死 偏移 偏差 跳动 "
    "报警 故障 损坏 失效 漂移 超差 温升 发热 冒烟 打火 抖动 卡顿 堵转 缺相 缺油 缺水"
)
_FAULT_TAGS = frozenset({"v", "vn", "a", "an", "n"})
_NOUN_TAGS = frozenset({"n", "nz", "vn"})
#: General words that only look technical.
_STOP = frozenset(
    _split(
        "手机 飞机 电视 电视机 电脑 司机 时机 机会 危机 生机 动机 心机 有机 随机 投机 契机 "
        "专机 战机 班机 客机 军机 敌机 玄机 良机 杀机 转机 天机 先机 商机 "
        "电台 电话 电影 电报 电梯门 油画 油条 油饼 油菜 汽车 火车 马车 列车 战车 车站 "
        "线索 线路 天线 路线 前线 视线 防线 战线 界线 直线 曲线 热线 热线电话 "
        "表情 表示 表明 表达 表演 代表 发表 外表 仪表堂堂 温度计 体温计 "
        "卡片 照片 影片 图片 名片 唱片 刀片 文件 条件 事件 案件 邮件 软件 证件 稿件 "
        "气氛 气质 勇气 力气 运气 生气 客气 脾气 空气 天气 名气 福气 "
        "热情 热爱 热心 热闹 冷静 冷淡 冷漠 冷笑 温柔 温暖 温和 "
        "响应 影响 声响 反响 跳舞 跳槽 松鼠 断言 裂痕 烧烤 烧饼 烧鸡"
    )
)


def _jieba_words() -> Iterator[tuple[str, int, str]]:
    path = resources.files("jieba").joinpath("dict.txt")
    with path.open(encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and _HAN.fullmatch(parts[0]):
                yield parts[0], int(parts[1]), parts[2]


def _pypinyin_phrases() -> Iterator[str]:
    path = resources.files("pypinyin").joinpath("phrases_dict.json")
    phrases: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    yield from (p for p in phrases if _HAN.fullmatch(p))


def _kind(word: str, tag: str | None) -> str | None:
    if word in _STOP:
        return None
    for kind in ("quantity", "part", "medium", "equipment"):
        for head in _HEADS[kind]:
            if word.endswith(head) and len(word) > len(head):
                stem = word[: -len(head)]
                technical = head in _STRONG_HEADS or any(c in _TECH for c in stem)
                if technical and (tag is None or tag in _NOUN_TAGS):
                    return kind
    if tag in _FAULT_TAGS and 2 <= len(word) <= 4 and any(f in word for f in _FAULTS):
        return "fault"
    return None


def build() -> list[tuple[str, str, str]]:
    """(term, kind, source) for every kept word, jieba's first, in dictionary order."""
    kept: dict[str, tuple[str, str, str]] = {}
    for word, freq, tag in _jieba_words():
        if freq < 2 and len(word) == 2:
            continue  # jieba's rarest two-character entries are mostly noise
        kind = _kind(word, tag)
        if kind is not None:
            kept.setdefault(word, (word, kind, "jieba"))
    for phrase in _pypinyin_phrases():
        if phrase not in kept and 3 <= len(phrase) <= 6:
            kind = _kind(phrase, None)
            if kind in ("part", "equipment", "quantity"):
                kept[phrase] = (phrase, kind, "pypinyin")
    return list(kept.values())


def main() -> None:
    rows = build()
    header = (
        "# Maintenance lexicon of bot.nlp.correct, made by `python -m bot.nlp.build_terms`;\n"
        "# sources and licences: LEXICON_SOURCES.md. TERM <TAB> KIND <TAB> SOURCE\n"
    )
    OUT.write_text(header + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    counts: dict[str, int] = {}
    for _, kind, source in rows:
        counts[f"{kind}/{source}"] = counts.get(f"{kind}/{source}", 0) + 1
    print(len(rows), "terms:", dict(sorted(counts.items())))


if __name__ == "__main__":
    main()
