package synth

import "path/filepath"

// Public reference lists. They are fixed, independent of any generated record, so specs may
// publish them as domains.

// Districts are the GB/T 2260 codes of Kunming's districts and counties, in code order.
var Districts = []string{
	"530102", "530103", "530111", "530112", "530113", "530114", "530115",
	"530124", "530125", "530126", "530127", "530128", "530129", "530181",
}

// DistrictNames are the names of Districts, index for index.
var DistrictNames = []string{
	"五华区", "盘龙区", "官渡区", "西山区", "东川区", "呈贡区", "晋宁区",
	"富民县", "宜良县", "石林彝族自治县", "嵩明县", "禄劝彝族苗族自治县", "寻甸回族彝族自治县", "安宁市",
}

// districtShort are the names used inside enterprise names.
var districtShort = []string{
	"五华", "盘龙", "官渡", "西山", "东川", "呈贡", "晋宁",
	"富民", "宜良", "石林", "嵩明", "禄劝", "寻甸", "安宁",
}

// districtPop are relative resident populations (about the 2020 census, 10k persons): the
// urban districts are much larger.
var districtPop = []float64{114, 99, 160, 97, 26, 65, 35, 15, 43, 25, 43, 39, 46, 48}

// districtUrban marks the main urban districts (higher incomes, more enterprises).
var districtUrban = []bool{true, true, true, true, false, true, false, false, false, false, false, false, false, true}

// districtEnterprise are relative enterprise counts per district (urban-heavy).
var districtEnterprise = []float64{260, 190, 300, 160, 15, 90, 25, 10, 25, 15, 30, 12, 14, 60}

// districtHospitals is the number of hospitals per district (61 in all).
var districtHospitals = []int{9, 7, 8, 6, 3, 5, 3, 2, 3, 2, 3, 3, 3, 4}

// DistrictName returns the name of a district code, or "" if unknown.
func DistrictName(code string) string {
	for i, c := range Districts {
		if c == code {
			return DistrictNames[i]
		}
	}
	return ""
}

// AgeBands are the age bands (age in whole years) used by every dataset.
var AgeBands = []string{"0-17", "18-34", "35-49", "50-64", "65+"}

// ageBandLow are the lower bounds of AgeBands.
var ageBandLow = []int{0, 18, 35, 50, 65}

// ageBandShare is the population share of each band.
var ageBandShare = []float64{0.18, 0.25, 0.24, 0.20, 0.13}

// AgeBand returns the index into AgeBands of an age in whole years.
func AgeBand(age int) int {
	for i := len(ageBandLow) - 1; i > 0; i-- {
		if age >= ageBandLow[i] {
			return i
		}
	}
	return 0
}

// Genders are the values of the gender columns.
var Genders = []string{"M", "F"}

// IncomeBands are the values of residents.income_band, lowest first.
var IncomeBands = []string{"low", "lower_middle", "middle", "upper_middle", "high"}

// incomeWeights[urban][band] for working-age adults; minors and the elderly shift lower.
var incomeWeights = [2][5]float64{
	{0.30, 0.30, 0.25, 0.11, 0.04}, // rural counties
	{0.15, 0.22, 0.32, 0.20, 0.11}, // urban districts
}

// Industries are GB/T 4754-2017 section names used for enterprises.industry.
var Industries = []string{
	"农、林、牧、渔业",
	"制造业",
	"建筑业",
	"批发和零售业",
	"交通运输、仓储和邮政业",
	"住宿和餐饮业",
	"信息传输、软件和信息技术服务业",
	"金融业",
	"房地产业",
	"租赁和商务服务业",
	"科学研究和技术服务业",
	"居民服务、修理和其他服务业",
	"卫生和社会工作",
}

var industryWeights = []float64{5, 7, 8, 30, 4, 8, 7, 2, 4, 12, 8, 3, 2}

// industryWord is the business word used in an enterprise name, per industry.
var industryWord = [][]string{
	{"农业", "生态农业", "种植", "养殖"},
	{"机械制造", "食品", "新材料", "建材"},
	{"建筑工程", "建设", "装饰工程", "市政工程"},
	{"商贸", "贸易", "百货", "医药连锁"},
	{"物流", "运输", "供应链", "快递服务"},
	{"餐饮管理", "酒店管理", "饮食", "客栈"},
	{"网络科技", "信息技术", "软件", "数据科技"},
	{"小额贷款", "融资担保", "投资管理", "典当"},
	{"房地产开发", "置业", "物业服务", "房产经纪"},
	{"商务咨询", "企业管理", "广告", "人力资源"},
	{"生物科技", "检测技术", "工程设计", "环保科技"},
	{"家政服务", "汽车维修", "美容美发", "洗涤服务"},
	{"医院管理", "康复", "养老服务", "诊所管理"},
}

// individualWord is the shop word of an individual business (个体工商户), per industry.
var individualWord = []string{"农庄", "加工坊", "装修队", "便利店", "货运部", "餐馆", "电脑维修部", "典当行", "房屋中介", "复印店", "技术服务部", "修理部", "诊所"}

// tradeNames are characters combined into enterprise trade names (字号).
var tradeNames = []string{
	"云", "滇", "春", "城", "金", "马", "碧", "鸡", "泰", "华", "盛", "恒", "信", "达", "鑫", "源",
	"瑞", "祥", "隆", "兴", "宏", "昌", "安", "和", "新", "南", "山", "海", "明", "远", "通", "创",
	"博", "嘉", "丰", "顺", "福", "康", "永", "德",
}

// Surnames with relative frequencies (national ranking with Yunnan's flavour).
var surnames = []string{
	"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
	"何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹",
	"袁", "邓", "许", "傅", "沈", "曾", "彭", "吕", "苏", "卢", "蒋", "蔡", "贾", "丁", "魏", "薛",
	"叶", "阎", "余", "潘", "杜", "戴", "夏", "钟", "汪", "田", "任", "姜", "范", "方", "石", "姚",
	"谭", "廖", "邹", "熊", "金", "陆", "郝", "孔", "白", "崔", "康", "毛", "邱", "秦", "江", "史",
	"顾", "侯", "邵", "孟", "龙", "万", "段", "普", "者", "岩", "刀", "字", "鲁", "保", "罕",
}

var surnameWeights = []float64{
	7.1, 7.5, 6.8, 5.4, 4.5, 5.5, 3.0, 2.2, 1.6, 1.6, 1.3, 1.3, 1.2, 1.1, 1.0, 0.9,
	0.9, 0.9, 1.0, 0.9, 0.7, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.4, 0.3, 0.4, 0.4,
	0.4, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.2,
	0.3, 0.2, 0.3, 0.3, 0.3, 0.2, 0.2, 0.2, 0.2, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2,
	0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2,
	0.1, 0.2, 0.1, 0.2, 0.2, 0.1, 0.2, 0.15, 0.1, 0.1, 0.05, 0.1, 0.1, 0.1, 0.05,
}

var givenMale = []string{
	"伟", "强", "磊", "军", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "斌",
	"宇", "浩", "凯", "俊", "波", "峰", "建", "国", "志", "文", "云", "龙", "林", "亮", "昊", "轩",
	"子", "嘉", "泽", "睿", "晨", "博", "航", "成", "海", "东", "兴", "洪", "德", "福", "荣", "坤",
}

var givenFemale = []string{
	"芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "玲", "桂", "英", "萍", "红", "燕", "梅",
	"琳", "雪", "婷", "慧", "颖", "倩", "琴", "云", "洁", "佳", "欣", "怡", "梓", "涵", "诗", "雨",
	"萱", "思", "悦", "彤", "月", "兰", "春", "凤", "珍", "莉", "晶", "蓉", "丹", "露", "瑶", "妍",
}

// mobilePrefixes are mainland mobile number segments (China Mobile, Unicom, Telecom).
var mobilePrefixes = []string{
	"134", "135", "136", "137", "138", "139", "147", "150", "151", "152", "157", "158", "159",
	"172", "178", "182", "183", "184", "187", "188", "195", "198",
	"130", "131", "132", "145", "155", "156", "166", "175", "176", "185", "186", "196",
	"133", "149", "153", "173", "177", "180", "181", "189", "190", "191", "193", "199",
}

// diagnosis is one ICD-10 code with its age-band weights and cost profile.
type diagnosis struct {
	code   string
	w      [5]float64 // relative frequency per age band
	sex    byte       // 0 any, 'M' or 'F' only
	pIn    float64    // probability that a visit is inpatient
	outMed float64    // median outpatient cost, CNY
	inMed  float64    // median inpatient cost, CNY
}

var diagnoses = []diagnosis{
	{"A09", [5]float64{8, 3, 2, 2, 2}, 0, 0.05, 150, 3500},
	{"B34.9", [5]float64{6, 2, 1, 1, 1}, 0, 0.02, 130, 3000},
	{"C16.9", [5]float64{0, 0.03, 0.3, 1, 1.2}, 0, 0.4, 1000, 28000},
	{"C22.0", [5]float64{0, 0.05, 0.3, 0.8, 0.8}, 0, 0.4, 1200, 30000},
	{"C34.9", [5]float64{0, 0.05, 0.4, 1.5, 2}, 0, 0.4, 1200, 30000},
	{"C50.9", [5]float64{0, 0.3, 2.4, 2.4, 1.2}, 'F', 0.35, 1500, 25000},
	{"D50.9", [5]float64{1, 2, 1, 1, 1}, 0, 0.03, 180, 5000},
	{"E11.9", [5]float64{0.1, 1, 5, 10, 10}, 0, 0.04, 260, 9000},
	{"E78.5", [5]float64{0, 1, 3, 4, 3}, 0, 0.01, 200, 5000},
	{"F32.9", [5]float64{0.3, 2, 1.5, 1, 0.8}, 0, 0.03, 300, 12000},
	{"G43.9", [5]float64{0.5, 2, 2, 1, 0.3}, 0, 0.01, 220, 5000},
	{"H10.9", [5]float64{3, 2, 1.5, 1, 1}, 0, 0, 100, 0},
	{"H25.9", [5]float64{0, 0, 0.3, 2, 4}, 0, 0.2, 200, 8000},
	{"I10", [5]float64{0, 1, 6, 14, 16}, 0, 0.02, 220, 6000},
	{"I25.1", [5]float64{0, 0.1, 1, 5, 9}, 0, 0.12, 300, 25000},
	{"I50.9", [5]float64{0, 0, 0.2, 1, 4}, 0, 0.35, 350, 20000},
	{"I63.9", [5]float64{0, 0.1, 0.6, 3, 6}, 0, 0.5, 400, 22000},
	{"J06.9", [5]float64{30, 14, 10, 7, 5}, 0, 0.01, 120, 3000},
	{"J18.9", [5]float64{8, 3, 3, 4, 8}, 0, 0.25, 350, 9000},
	{"J20.9", [5]float64{10, 5, 5, 5, 6}, 0, 0.05, 180, 5000},
	{"J44.9", [5]float64{0, 0.2, 1, 4, 8}, 0, 0.15, 300, 12000},
	{"J45.9", [5]float64{4, 2, 2, 2, 2}, 0, 0.08, 250, 7000},
	{"K29.7", [5]float64{2, 7, 7, 6, 5}, 0, 0.03, 200, 5000},
	{"K35.8", [5]float64{2, 2, 1, 0.5, 0.3}, 0, 0.85, 400, 15000},
	{"K80.2", [5]float64{0, 1, 2, 2, 2}, 0, 0.3, 300, 18000},
	{"L30.9", [5]float64{3, 3, 2, 2, 2}, 0, 0, 150, 0},
	{"M17.9", [5]float64{0, 0.2, 2, 5, 6}, 0, 0.05, 220, 35000},
	{"M54.5", [5]float64{0.2, 5, 7, 6, 4}, 0, 0.02, 180, 6000},
	{"N18.5", [5]float64{0, 0.1, 0.4, 0.8, 1}, 0, 0.05, 450, 20000},
	{"N39.0", [5]float64{1, 3, 2, 2, 3}, 0, 0.05, 180, 5000},
	{"N40", [5]float64{0, 0, 0.6, 6, 10}, 'M', 0.08, 250, 12000},
	{"O80", [5]float64{0.05, 10, 2, 0, 0}, 'F', 0.95, 300, 6000},
	{"R50.9", [5]float64{8, 2, 1, 1, 1}, 0, 0.03, 150, 3000},
	{"S52.5", [5]float64{1.5, 1, 1, 1, 1.5}, 0, 0.15, 500, 12000},
	{"S72.0", [5]float64{0, 0, 0.05, 0.3, 2}, 0, 0.9, 600, 35000},
	{"Z00.0", [5]float64{3, 4, 4, 4, 4}, 0, 0, 200, 0},
}

// DiagnosisChapters are the ICD-10 letter chapters (the first letter of a code) that
// medical_visits.diagnosis_chapter can take, in order.
var DiagnosisChapters = func() []string {
	var out []string
	for _, d := range diagnoses {
		ch := d.code[:1]
		if len(out) == 0 || out[len(out)-1] != ch {
			out = append(out, ch)
		}
	}
	return out
}()

// chronicCodes are the conditions of the few heavy users (dialysis, cancer treatment,
// diabetes care) with hundreds of visits.
var chronicCodes = []string{"N18.5", "N18.5", "N18.5", "C34.9", "C16.9", "C22.0", "E11.9"}

// Datasets are the generated dataset names, in generation order.
var Datasets = []string{"residents", "medical_visits", "insurance_claims", "enterprises"}

// Providers are the organisations that provide each dataset. With Options.ByProvider a dataset
// is written into a folder named for its provider: the layout of a server's per-organisation
// import roots (cleanroom serve --import-root ORG=DIR).
var Providers = map[string]string{
	"residents":        "public-security-bureau",
	"medical_visits":   "health-commission",
	"insurance_claims": "medical-insurance-bureau",
	"enterprises":      "market-regulation-bureau",
}

// Path is where Generate writes a dataset's file (ext ".parquet" or ".csv") under opt.OutDir.
func Path(opt Options, name, ext string) string {
	if opt.ByProvider {
		return filepath.Join(opt.OutDir, Providers[name], name+ext)
	}
	return filepath.Join(opt.OutDir, name+ext)
}
