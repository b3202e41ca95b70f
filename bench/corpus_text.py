"""Phrase pools of the benchmark corpus: what requesters in a Chinese company write to IT, and in English.

Every Chinese string here is encodable in GB2312, so a mail can be written in GB2312, GBK or UTF-8.
Pools only; the choices are made by ``bench.corpus`` with a seeded generator.
"""

from __future__ import annotations

SURNAMES = ("张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭", "何", "林")
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "桂英",
         "建华", "志强", "海燕", "晓东", "文博", "子涵")
PINYIN = {"张": "zhang", "王": "wang", "李": "li", "赵": "zhao", "刘": "liu", "陈": "chen", "杨": "yang",
          "黄": "huang", "周": "zhou", "吴": "wu", "徐": "xu", "孙": "sun", "马": "ma", "朱": "zhu", "胡": "hu",
          "郭": "guo", "何": "he", "林": "lin"}
FIRST_EN = ("James", "Mary", "John", "Linda", "Robert", "Susan", "David", "Karen", "Peter", "Emma", "Lucas", "Olivia",
            "Noah", "Mia", "Daniel", "Grace")
LAST_EN = ("Smith", "Brown", "Taylor", "Wilson", "Clark", "Walker", "Young", "King", "Wright", "Green", "Baker",
           "Hill", "Scott", "Adams")
DOMAINS = ("corp.test", "branch.corp.test", "factory.corp.test", "sales.corp.test")
DEPARTMENTS_ZH = ("财务部", "人事部", "销售部", "市场部", "采购部", "研发中心", "生产部", "法务部", "行政部", "客服中心")
DEPARTMENTS_EN = ("Finance", "HR", "Sales", "Marketing", "Procurement", "R&D", "Production", "Legal", "Facilities")

# (subject, first sentence of the body)
PROBLEMS_ZH = (
    ("打印机无法打印", "{dept}{floor}楼的打印机无法打印，打印任务一直卡在队列里。"),
    ("电脑开机蓝屏", "我的电脑今天早上开机就蓝屏，错误代码 0x{code}，重启了三次还是一样。"),
    ("无法登录 OA 系统", "登录 OA 系统时提示用户名或密码错误，我确认密码没有输错，账号可能被锁定了。"),
    ("VPN 连接不上", "在家办公时 VPN 客户端一直提示连接超时，错误 {code}，昨天还是好的。"),
    ("邮箱容量已满", "Outlook 提示邮箱容量已满，无法收发邮件，请帮忙扩容或者归档。"),
    ("ERP 报错 无法保存凭证", "在 ERP 里保存凭证时报错 ORA-0{code}，整个{dept}都受影响。"),
    ("申请开通共享文件夹权限", "因工作需要，申请开通{dept}共享文件夹的读写权限。"),
    ("会议室投影仪没有信号", "{floor}楼大会议室的投影仪连接笔记本后显示无信号，下午两点有客户会议。"),
    ("网络很慢", "{dept}从上午开始网络非常慢，打开网页要等一分钟，视频会议频繁掉线。"),
    ("新员工电脑和账号申请", "下周一有两位新同事入职{dept}，需要准备电脑、邮箱和门禁卡。"),
    ("密码过期 无法修改", "域账号密码提示已过期，修改密码时提示不符合复杂度要求，但我已经按要求设置了。"),
    ("无线网络连不上", "{floor}楼的无线网络可以搜到信号，但是连接后获取不到地址。"),
    ("软件安装申请", "申请在我的电脑上安装 {software}，用于日常工作，已经得到部门经理批准。"),
    ("电话分机没有声音", "我的分机 {ext} 拿起话筒没有拨号音，也打不进来。"),
    ("文件误删 需要恢复", "昨天下午误删了共享盘上的一个文件夹，里面是本月的报表，请帮忙从备份恢复。"),
    ("显示器闪屏", "显示器一直闪屏，换了数据线也没有用，资产编号 PC-{asset}。"),
)
DETAILS_ZH = (
    "同事的电脑也有同样的问题。", "已经尝试重启电脑，问题依旧。", "这个问题从昨天下午开始出现。",
    "附上报错截图，请查看。", "比较着急，今天下班前需要用。", "我的电脑资产编号是 PC-{asset}。",
    "如需远程协助，请打我的分机 {ext}。", "之前也出现过一次，后来自己好了。", "影响到我们部门十几个人的工作。",
    "我已经清除了浏览器缓存，还是不行。", "系统提示联系管理员。", "请问大概什么时候能处理好？",
)
GREETINGS_ZH = ("您好，", "你好：", "IT 同事你好，", "技术支持中心：", "")
CLOSINGS_ZH = ("请尽快处理，谢谢！", "麻烦帮忙看一下，谢谢。", "谢谢！", "辛苦了，谢谢支持。")
FOLLOWUPS_ZH = (
    "补充一下：问题还在，今天上午又出现了两次。", "重启以后还是不行，请问有进展吗？",
    "我刚才又试了一下，现在报错变成了 {code}。", "这个问题比较急，麻烦尽快安排人看一下。",
    "谢谢，刚才按照你们说的操作已经好了。", "还没有解决，同事那边也一样。",
)
SIGNATURES_ZH = ("发自我的iPhone", "发自我的华为手机", "")

PROBLEMS_EN = (
    ("Printer not printing", "The printer on floor {floor} in {dept} does not print; jobs stay in the queue."),
    ("Laptop shows a blue screen", "My laptop shows a blue screen at boot with stop code 0x{code}."),
    ("Cannot log in to the intranet", "The intranet portal says my password is wrong, but I am sure it is right."),
    ("VPN keeps dropping", "Since this morning the VPN drops every few minutes with error {code}."),
    ("Mailbox full", "Outlook says my mailbox is full and I can no longer send mail."),
    ("Access to the {dept} share", "I need read and write access to the {dept} shared folder for a project."),
    ("Projector has no signal", "The projector in the large meeting room on floor {floor} shows no signal."),
    ("Network very slow", "The network in {dept} has been very slow since 9 am; video calls keep dropping."),
    ("Request: install {software}", "Please install {software} on my workstation; my manager approved it."),
    ("Phone extension dead", "Extension {ext} has no dial tone and nobody can call me."),
    ("Restore a deleted folder", "I deleted a folder on the shared drive yesterday; please restore it."),
)
DETAILS_EN = (
    "A colleague has the same problem.", "I already restarted the machine, no change.",
    "It started yesterday afternoon.", "Screenshot attached.", "I need it before the end of the day.",
    "My asset tag is PC-{asset}.", "You can reach me on extension {ext}.", "It happened once before last month.",
    "About a dozen people in the team are affected.", "The error says to contact the administrator.",
)
GREETINGS_EN = ("Hi,", "Hello IT,", "Dear support team,", "Hi team,", "")
CLOSINGS_EN = ("Thanks in advance.", "Thank you!", "Best regards,", "Cheers,")
FOLLOWUPS_EN = (
    "Quick update: it happened again twice this morning.", "Still not working after a restart. Any news?",
    "The error changed to {code} now.", "This is getting urgent, could someone have a look today?",
    "Thanks, it works again after the steps you sent.", "Not solved yet, my colleague sees it too.",
)
SIGNATURES_EN = ("Sent from my iPhone", "Get Outlook for Android", "")
SOFTWARE = ("Visio", "Adobe Acrobat", "Python 3.11", "SAP GUI", "Xmind", "WPS Office", "Tableau", "7-Zip")
ATTACHMENTS = (("screenshot.png", "image/png"), ("error.log", "text/plain"), ("报表.xlsx",
               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), ("manual.pdf", "application/pdf"))
